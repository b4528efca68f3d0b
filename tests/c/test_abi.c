/* Exercises libunet exactly as a C user would, through include/unet.h.
 * Usage: test_abi MODEL_DIR            full table (needs UNET_ORT_LIB or another way to find ONNX Runtime)
 *        test_abi MODEL_DIR discovery  load the default model and print which ONNX Runtime library was found
 *        test_abi MODEL_DIR default-labels IN.raw WIDTH HEIGHT OUT.raw
 *                                      the embedded default with all options left to it (its recommended
 *                                      post-processing): u16 pixels in, u32 labels out, for the CLI comparison
 * MODEL_DIR holds models prepared by tests/c_abi.rs. Prints "C ABI: N passed, M failed"; exit status 1 on failure. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet.h"

static int passed = 0, failed = 0;

static void expect_status(const char *what, UnetStatus got, UnetStatus want) {
    const char *msg = unet_last_error();
    if (got != want) {
        failed++;
        printf("FAIL %-44s got %d (%s), want %d (%s): %s\n", what, (int)got, unet_status_string(got), (int)want,
               unet_status_string(want), msg);
        return;
    }
    /* Every failure must come with a message; every success clears it. */
    if ((want != UNET_STATUS_OK) != (msg != NULL && msg[0] != '\0')) {
        failed++;
        printf("FAIL %-44s status right but message is '%s'\n", what, msg ? msg : "(null)");
        return;
    }
    passed++;
    if (want != UNET_STATUS_OK) printf("ok   %-44s %s\n", what, msg);
}

static void expect_true(const char *what, int cond) {
    if (cond) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s\n", what);
    }
}

static void expect_message_contains(const char *what, const char *needle) {
    expect_true(what, strstr(unet_last_error(), needle) != NULL);
}

static char *path_in(const char *dir, const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

/* A test image: bright squares on a dark background. */
enum { W = 160, H = 120, SQUARES = 4 };
static const int square[SQUARES][3] = {{10, 10, 30}, {80, 20, 25}, {30, 70, 35}, {110, 80, 20}};
static float image_f32[H * W];

static void make_image(void) {
    for (int i = 0; i < W * H; i++) image_f32[i] = 100.0f;
    for (int s = 0; s < SQUARES; s++)
        for (int y = square[s][1]; y < square[s][1] + square[s][2]; y++)
            for (int x = square[s][0]; x < square[s][0] + square[s][2]; x++) image_f32[y * W + x] = 3000.0f;
}

static UnetOutputs outputs_for(float *p, uint8_t *m, uint32_t *l, size_t n) {
    UnetOutputs o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.probabilities = p;
    o.probabilities_len = p ? n : 0;
    o.mask = m;
    o.mask_len = m ? n : 0;
    o.labels = l;
    o.labels_len = l ? n : 0;
    return o;
}

struct progress_log {
    size_t calls, last_done, total;
    size_t cancel_at; /* cancel when done reaches this (0 = never) */
};

static int32_t on_progress(void *user, size_t done, size_t total) {
    struct progress_log *log = user;
    log->calls++;
    log->last_done = done;
    log->total = total;
    return log->cancel_at && done >= log->cancel_at;
}

struct thread_job {
    const UnetModel *model;
    const uint32_t *expected;
    int ok;
};

static void *thread_main(void *arg) {
    struct thread_job *job = arg;
    static __thread uint32_t labels[W * H];
    UnetImage img;
    unet_image_init(&img, UNET_DTYPE_F32, image_f32, W, H, 1);
    job->ok = 1;
    for (int round = 0; round < 5; round++) {
        UnetOutputs out = outputs_for(NULL, NULL, labels, W * H);
        if (unet_segment(job->model, &img, NULL, &out) != UNET_STATUS_OK) job->ok = 0;
        if (memcmp(labels, job->expected, sizeof labels) != 0) job->ok = 0;
    }
    return NULL;
}

static int discovery(void) {
    UnetModel *model = NULL;
    if (unet_model_load(NULL, NULL, &model) != UNET_STATUS_OK) {
        printf("load failed: %s\n", unet_last_error());
        return 1;
    }
    UnetModelInfo info;
    info.struct_size = sizeof info;
    unet_model_info(model, &info);
    printf("ort_library=%s\n", info.ort_library);
    unet_model_free(model);
    return 0;
}

static int default_labels(const char *in, size_t w, size_t h, const char *out_path) {
    size_t n = w * h;
    uint16_t *pixels = malloc(n * sizeof *pixels);
    uint32_t *labels = malloc(n * sizeof *labels);
    FILE *f = fopen(in, "rb");
    if (!pixels || !labels || !f || fread(pixels, sizeof *pixels, n, f) != n) {
        printf("cannot read %s\n", in);
        return 1;
    }
    fclose(f);
    UnetModel *model = NULL;
    UnetImage img;
    unet_image_init(&img, UNET_DTYPE_U16, pixels, w, h, 1);
    UnetOutputs outputs;
    memset(&outputs, 0, sizeof outputs);
    outputs.struct_size = sizeof outputs;
    outputs.labels = labels;
    outputs.labels_len = n;
    if (unet_model_load(NULL, NULL, &model) != UNET_STATUS_OK || unet_segment(model, &img, NULL, &outputs) != UNET_STATUS_OK) {
        printf("segment failed: %s\n", unet_last_error());
        return 1;
    }
    f = fopen(out_path, "wb");
    if (!f || fwrite(labels, sizeof *labels, n, f) != n) return 1;
    fclose(f);
    printf("default-labels: %u instances\n", outputs.label_count);
    unet_model_free(model);
    free(pixels);
    free(labels);
    return 0;
}

/* unet_weight_map needs no network: this part also runs alone ("no-network") under valgrind. */
static void weight_map_checks(void) {
    /* unet_weight_map: two touching rectangles (labels 1 and 2) -> a 2-pixel separation line with the top weights. */
    enum { LW = 20, LH = 10 };
    static uint16_t two[LH * LW];
    static uint32_t two32[LH * (LW + 3)];
    memset(two, 0, sizeof two);
    for (int y = 2; y < 8; y++)
        for (int x = 2; x < 18; x++) two[y * LW + x] = x < 10 ? 1 : 2;
    for (int y = 0; y < LH; y++)
        for (int x = 0; x < LW + 3; x++) two32[y * (LW + 3) + x] = x < LW && two[y * LW + x] ? 4000000000u + two[y * LW + x] : 0;
    static float weights[LH * LW], weights32[LH * LW];
    static uint8_t target[LH * LW];
    UnetImage lab;
    unet_image_init(&lab, UNET_DTYPE_U16, two, LW, LH, 1);
    UnetWeightMapOptions wopts;
    expect_status("weight_map_options_init", unet_weight_map_options_init(&wopts), UNET_STATUS_OK);
    expect_true("weight map defaults: w0 10, sigma 5, border 2", wopts.w0 == 10.0f && wopts.sigma == 5.0f && wopts.border_width == 2);
    UnetWeightMapOutputs wout;
    memset(&wout, 0, sizeof wout);
    wout.struct_size = sizeof wout;
    wout.weights = weights;
    wout.weights_len = LH * LW;
    wout.target = target;
    wout.target_len = LH * LW;
    expect_status("weight_map: u16 labels", unet_weight_map(&lab, &wopts, &wout), UNET_STATUS_OK);
    expect_true("weight_map: 2 cells, 12 separation pixels", wout.cells == 2 && wout.separation_pixels == 12);
    expect_true("weight_map: line at x = 10, 11", target[5 * LW + 9] == 1 && target[5 * LW + 10] == 0 && target[5 * LW + 11] == 0 && target[5 * LW + 12] == 1);
    float top = 0;
    for (int i = 0; i < LH * LW; i++) top = weights[i] > top ? weights[i] : top;
    expect_true("weight_map: the line carries the largest weight", weights[5 * LW + 10] == top && top > 5.0f);
    UnetImage lab32;
    unet_image_init(&lab32, UNET_DTYPE_U32, two32, LW, LH, 1);
    lab32.row_stride_bytes = (LW + 3) * sizeof(uint32_t);
    wout.weights = weights32;
    wout.target = NULL;
    expect_status("weight_map: u32 labels near 2^32, padded rows", unet_weight_map(&lab32, NULL, &wout), UNET_STATUS_OK);
    expect_true("weight_map: same weights as u16", memcmp(weights, weights32, sizeof weights) == 0);

#define BAD_WMAP(what, assignment, want)                                   \
    do {                                                                   \
        UnetImage l2 = lab;                                                \
        UnetWeightMapOptions o2;                                           \
        unet_weight_map_options_init(&o2);                                 \
        UnetWeightMapOutputs w2 = wout;                                    \
        w2.weights = weights;                                              \
        w2.weights_len = LH * LW;                                          \
        assignment;                                                        \
        expect_status(what, unet_weight_map(&l2, &o2, &w2), want);         \
    } while (0)
    BAD_WMAP("weight_map: labels NULL data", l2.data = NULL, UNET_STATUS_NULL_ARGUMENT);
    BAD_WMAP("weight_map: f32 labels", l2.dtype = UNET_DTYPE_F32, UNET_STATUS_UNSUPPORTED_DTYPE);
    BAD_WMAP("weight_map: unknown dtype", l2.dtype = 0, UNET_STATUS_UNSUPPORTED_DTYPE);
    BAD_WMAP("weight_map: 2 channels", (l2.channels = 2, l2.width = LW / 2), UNET_STATUS_INVALID_SIZE);
    BAD_WMAP("weight_map: width 0", l2.width = 0, UNET_STATUS_INVALID_SIZE);
    BAD_WMAP("weight_map: stride smaller than a row", l2.row_stride_bytes = 2, UNET_STATUS_INVALID_STRIDE);
    BAD_WMAP("weight_map: rows x stride overflow", (l2.height = 1 << 20, l2.row_stride_bytes = (SIZE_MAX / 1024) & ~(size_t)15), UNET_STATUS_SIZE_OVERFLOW);
    BAD_WMAP("weight_map: sigma 0", o2.sigma = 0.0f, UNET_STATUS_INVALID_ARGUMENT);
    BAD_WMAP("weight_map: w0 infinite", o2.w0 = INFINITY, UNET_STATUS_INVALID_ARGUMENT);
    BAD_WMAP("weight_map: unknown balance", o2.balance = 7, UNET_STATUS_INVALID_ARGUMENT);
    BAD_WMAP("weight_map: explicit weight -1", (o2.balance = UNET_CLASS_BALANCE_EXPLICIT, o2.foreground_weight = -1.0f), UNET_STATUS_INVALID_ARGUMENT);
    BAD_WMAP("weight_map: options struct_size 1", o2.struct_size = 1, UNET_STATUS_STRUCT_VERSION);
    BAD_WMAP("weight_map: sigma 1e20 (border term would vanish)", o2.sigma = 1e20f, UNET_STATUS_INVALID_ARGUMENT);
    BAD_WMAP("weight_map: w0 1e30", o2.w0 = 1e30f, UNET_STATUS_INVALID_ARGUMENT);
    BAD_WMAP("weight_map: weights buffer too small", w2.weights_len = 7, UNET_STATUS_BUFFER_TOO_SMALL);
    BAD_WMAP("weight_map: misaligned weights", w2.weights = (float *)((char *)weights + 1), UNET_STATUS_MISALIGNED);
    BAD_WMAP("weight_map: outputs struct_size 0", w2.struct_size = 0, UNET_STATUS_STRUCT_VERSION);
    BAD_WMAP("weight_map: target inside weights", (w2.target = (uint8_t *)weights, w2.target_len = LH * LW), UNET_STATUS_INVALID_ARGUMENT);
    expect_message_contains("  message names both buffers", "outputs->weights and outputs->target overlap");
    BAD_WMAP("weight_map: target over the labels", (w2.target = (uint8_t *)two, w2.target_len = LH * LW), UNET_STATUS_INVALID_ARGUMENT);
    expect_message_contains("  message names the labels", "labels->data and outputs->target overlap");
    expect_status("weight_map: labels NULL", unet_weight_map(NULL, NULL, &wout), UNET_STATUS_NULL_ARGUMENT);
    expect_status("weight_map: outputs NULL", unet_weight_map(&lab, NULL, NULL), UNET_STATUS_NULL_ARGUMENT);
    expect_status("weight_map_options_init: NULL", unet_weight_map_options_init(NULL), UNET_STATUS_NULL_ARGUMENT);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR [discovery|no-network]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    if (argc > 2 && strcmp(argv[2], "discovery") == 0) return discovery();
    if (argc > 6 && strcmp(argv[2], "default-labels") == 0)
        return default_labels(argv[3], (size_t)atol(argv[4]), (size_t)atol(argv[5]), argv[6]);
    if (argc > 2 && strcmp(argv[2], "no-network") == 0) {
        expect_true("status string", strlen(unet_status_string(UNET_STATUS_OK)) > 0);
        weight_map_checks();
        printf("C ABI (no network): %d passed, %d failed\n", passed, failed);
        return failed ? 1 : 0;
    }
    make_image();
    const size_t n = (size_t)W * H;

    /* Version and status strings. */
    char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", UNET_VERSION_MAJOR, UNET_VERSION_MINOR, UNET_VERSION_PATCH);
    expect_true("unet_version matches the header macros", strcmp(unet_version(), version) == 0);
    for (int s = 0; s <= UNET_STATUS_IO; s++) expect_true("status string", strlen(unet_status_string(s)) > 0);
    expect_true("unknown status string", strcmp(unet_status_string(999), "unknown status") == 0);
    unet_model_free(NULL);

    UnetModelOptions opts;
    UnetModel *model = NULL;

    /* ONNX Runtime: an explicit path that does not exist, before any library is loaded: a clear error. */
    unet_model_options_init(&opts);
    opts.ort_library_path = "/nonexistent/libonnxruntime.so.1.31.1";
    expect_status("load: explicit ORT path missing", unet_model_load(NULL, &opts, &model), UNET_STATUS_RUNTIME_NOT_FOUND);
    expect_message_contains("  message names the path", "/nonexistent/libonnxruntime.so.1.31.1");
    expect_true("  *out is NULL after failure", model == NULL);

    /* Model loading. */
    unet_model_options_init(&opts);
    expect_status("load: out NULL", unet_model_load(NULL, &opts, NULL), UNET_STATUS_NULL_ARGUMENT);
    expect_status("options_init: NULL", unet_model_options_init(NULL), UNET_STATUS_NULL_ARGUMENT);
    expect_status("load: missing file", unet_model_load(path_in(dir, "missing.onnx"), &opts, &model), UNET_STATUS_MODEL_NOT_FOUND);
    expect_message_contains("  message names the file", "missing.onnx");
    expect_status("load: empty path", unet_model_load("", &opts, &model), UNET_STATUS_MODEL_NOT_FOUND);
    expect_status("load: not ONNX", unet_model_load(path_in(dir, "garbage.onnx"), &opts, &model), UNET_STATUS_MODEL_INVALID);
    expect_status("load: a device, not a file", unet_model_load("/dev/zero", &opts, &model), UNET_STATUS_MODEL_INVALID);
    expect_status("load: a folder, not a file", unet_model_load(dir, &opts, &model), UNET_STATUS_MODEL_INVALID);
    expect_status("load: truncated ONNX", unet_model_load(path_in(dir, "truncated.onnx"), &opts, &model), UNET_STATUS_MODEL_INVALID);
    expect_status("load: empty file", unet_model_load(path_in(dir, "empty.onnx"), &opts, &model), UNET_STATUS_MODEL_INVALID);
    expect_status("load: no unet metadata", unet_model_load(path_in(dir, "nometa.onnx"), &opts, &model), UNET_STATUS_MODEL_INCOMPATIBLE);
    expect_message_contains("  message names the key", "unet.format_version");
    expect_status("load: fixed input size", unet_model_load(path_in(dir, "fixed.onnx"), &opts, &model), UNET_STATUS_MODEL_INCOMPATIBLE);
    expect_message_contains("  message says why", "fixed size");
    /* A name where no file of that name exists loads the embedded model of that name. */
    expect_status("load: embedded default by name", unet_model_load("default", &opts, &model), UNET_STATUS_OK);
    unet_model_free(model);
    model = NULL;
    expect_status("load: embedded EM model by name", unet_model_load("em", &opts, &model), UNET_STATUS_OK);
    unet_model_free(model);
    model = NULL;
    expect_status("load: unknown name", unet_model_load("no-such-model", &opts, &model), UNET_STATUS_MODEL_NOT_FOUND);
    /* unet_model_names lists the embedded models; each one loads by its name. */
    {
        const char *names = unet_model_names();
        expect_true("model names: default, em and cells", names && strcmp(names, "default,em,cells") == 0);
        char list[64];
        snprintf(list, sizeof list, "%s", names ? names : "");
        int loaded = 0;
        for (char *save = NULL, *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
            if (unet_model_load(name, &opts, &model) == UNET_STATUS_OK) loaded++;
            unet_model_free(model);
            model = NULL;
        }
        expect_true("  every listed name loads", loaded == 3);
    }
    expect_status("load_from_memory: data NULL", unet_model_load_from_memory(NULL, 10, &opts, &model), UNET_STATUS_NULL_ARGUMENT);
    uint8_t byte = 0;
    expect_status("load_from_memory: len 0", unet_model_load_from_memory(&byte, 0, &opts, &model), UNET_STATUS_INVALID_SIZE);
    expect_status("load_from_memory: garbage", unet_model_load_from_memory((const uint8_t *)"hello", 5, &opts, &model), UNET_STATUS_MODEL_INVALID);
    opts.struct_size = 3;
    expect_status("load: options struct_size too small", unet_model_load(NULL, &opts, &model), UNET_STATUS_STRUCT_VERSION);
    unet_model_options_init(&opts);
    opts.provider = 7;
    expect_status("load: unknown provider", unet_model_load(NULL, &opts, &model), UNET_STATUS_INVALID_ARGUMENT);
    opts.provider = UNET_PROVIDER_CUDA;
    expect_status("load: CUDA demanded, CPU-only ORT", unet_model_load(NULL, &opts, &model), UNET_STATUS_PROVIDER_UNAVAILABLE);
    expect_message_contains("  message says why", "CUDA");

    /* The embedded default, provider auto: runs on the CPU and says why. */
    unet_model_options_init(&opts);
    expect_status("load: embedded default (NULL path)", unet_model_load(NULL, &opts, &model), UNET_STATUS_OK);
    UnetModelInfo info;
    info.struct_size = 4;
    expect_status("info: struct_size too small", unet_model_info(model, &info), UNET_STATUS_STRUCT_VERSION);
    info.struct_size = sizeof info;
    expect_status("info: NULL model", unet_model_info(NULL, &info), UNET_STATUS_NULL_ARGUMENT);
    expect_status("info: NULL info", unet_model_info(model, NULL), UNET_STATUS_NULL_ARGUMENT);
    expect_status("info", unet_model_info(model, &info), UNET_STATUS_OK);
    expect_true("info: provider is CPU", info.provider == UNET_PROVIDER_CPU);
    expect_true("info: fallback reason given", info.fallback_reason && strstr(info.fallback_reason, "CUDA"));
    expect_true("info: halo 92, 16k+60", info.halo == 92 && info.size_step == 16 && info.size_offset == 60);
    expect_true("info: one channel, two classes", info.in_channels == 1 && info.classes == 2);
    expect_true("info: ORT version", strcmp(info.ort_version, "1.31.1") == 0);
    expect_true("info: normalisation", strcmp(info.normalization, "percentile:1:99.8") == 0);
    expect_true("info: class names", strcmp(info.class_names, "background,foreground") == 0);
    expect_true("info: provenance", strlen(info.provenance) > 0);
    expect_true("info: default recommends its watershed", info.postprocessing && strncmp(info.postprocessing, "watershed ", 10) == 0);
    unet_model_free(model);

    /* Behaviour is tested on the intensity baseline, whose output is known (the default changes when retrained). */
    expect_status("load: baseline model file", unet_model_load(path_in(dir, "baseline.onnx"), &opts, &model), UNET_STATUS_OK);
    expect_status("info: baseline", unet_model_info(model, &info), UNET_STATUS_OK);
    expect_true("info: baseline provenance", strncmp(info.provenance, "intensity baseline", 18) == 0);
    expect_true("info: baseline recommends nothing: components", strcmp(info.postprocessing, "components min_size=0") == 0);

    /* A correct segmentation, with every output and progress. */
    static float prob[H * W];
    static uint8_t mask[H * W];
    static uint32_t labels[H * W], labels_u8[H * W], labels_u16[H * W], labels_strided[H * W];
    UnetImage img;
    unet_image_init(&img, UNET_DTYPE_F32, image_f32, W, H, 1);
    UnetSegmentOptions sopts;
    unet_segment_options_init(&sopts);
    struct progress_log log = {0, 0, 0, 0};
    sopts.progress = on_progress;
    sopts.progress_user_data = &log;
    sopts.max_tile = 40;
    UnetOutputs out = outputs_for(prob, mask, labels, n);
    expect_status("segment: f32, all outputs, tiles of 40", unet_segment(model, &img, &sopts, &out), UNET_STATUS_OK);
    expect_true("segment: one label per square", out.label_count == SQUARES);
    expect_true("progress: reached total", log.calls >= 2 && log.last_done == log.total && log.total > 2);
    int consistent = 1;
    for (size_t i = 0; i < n; i++) {
        if (!(prob[i] >= 0.0f && prob[i] <= 1.0f)) consistent = 0;
        if ((mask[i] == 1) != (prob[i] > 0.5f)) consistent = 0;
        if ((labels[i] != 0) != (mask[i] == 1)) consistent = 0;
    }
    expect_true("segment: probabilities, mask and labels agree", consistent);
    expect_true("segment: square centre labelled", labels[25 * W + 25] != 0 && labels[2 * W + 2] == 0);

    /* unet_instances: the segmentation's probabilities labelled again give its mask and labels; with and without
     * the model (no recommendation: P > 1 - P); bad arguments are refused. */
    {
        static uint8_t mask2[H * W];
        static uint32_t labels2[H * W];
        UnetImage pimg;
        unet_image_init(&pimg, UNET_DTYPE_F32, prob, W, H, 1);
        UnetOutputs o2 = outputs_for(NULL, mask2, labels2, n);
        expect_status("instances: probabilities of the segmentation", unet_instances(model, &pimg, NULL, &o2), UNET_STATUS_OK);
        expect_true("instances: same mask, labels and count", memcmp(mask2, mask, n) == 0 &&
                    memcmp(labels2, labels, n * sizeof labels[0]) == 0 && o2.label_count == SQUARES);
        memset(labels2, 0xff, sizeof labels2);
        expect_status("instances: model NULL", unet_instances(NULL, &pimg, NULL, &o2), UNET_STATUS_OK);
        expect_true("instances: model NULL, same labels", memcmp(labels2, labels, n * sizeof labels[0]) == 0);
        UnetOutputs with_p = outputs_for(prob, NULL, labels2, n);
        expect_status("instances: probabilities output given", unet_instances(model, &pimg, NULL, &with_p), UNET_STATUS_INVALID_ARGUMENT);
        UnetOutputs none = outputs_for(NULL, NULL, NULL, n);
        expect_status("instances: no output", unet_instances(model, &pimg, NULL, &none), UNET_STATUS_INVALID_ARGUMENT);
        UnetOutputs alias = outputs_for(NULL, NULL, (uint32_t *)prob, n);
        expect_status("instances: labels alias the input", unet_instances(model, &pimg, NULL, &alias), UNET_STATUS_INVALID_ARGUMENT);
        expect_status("instances: probabilities NULL", unet_instances(model, NULL, NULL, &o2), UNET_STATUS_NULL_ARGUMENT);
        expect_status("instances: outputs NULL", unet_instances(model, &pimg, NULL, NULL), UNET_STATUS_NULL_ARGUMENT);
        UnetImage wrong;
        unet_image_init(&wrong, UNET_DTYPE_F32, image_f32, W, H, 1);
        expect_status("instances: values outside [0, 1]", unet_instances(model, &wrong, NULL, &o2), UNET_STATUS_INVALID_ARGUMENT);
        expect_message_contains("  message says so", "not in [0, 1]");
        unet_image_init(&wrong, UNET_DTYPE_U8, mask, W, H, 1);
        expect_status("instances: u8 probabilities", unet_instances(model, &wrong, NULL, &o2), UNET_STATUS_UNSUPPORTED_DTYPE);
        UnetOutputs short_out = outputs_for(NULL, NULL, labels2, n - 1);
        expect_status("instances: labels one short", unet_instances(model, &pimg, NULL, &short_out), UNET_STATUS_BUFFER_TOO_SMALL);
    }

    /* The same image as u8, as u16, and as f32 with padded rows: the same labels. */
    static uint8_t img8[H * W];
    static uint16_t img16[H * W];
    static float padded[H * (W + 7)];
    for (size_t i = 0; i < n; i++) {
        img8[i] = (uint8_t)(image_f32[i] / 20.0f);
        img16[i] = (uint16_t)image_f32[i];
    }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W + 7; x++) padded[y * (W + 7) + x] = x < W ? image_f32[y * W + x] : NAN;
    UnetImage img_u8, img_u16, img_padded;
    unet_image_init(&img_u8, UNET_DTYPE_U8, img8, W, H, 1);
    unet_image_init(&img_u16, UNET_DTYPE_U16, img16, W, H, 1);
    unet_image_init(&img_padded, UNET_DTYPE_F32, padded, W, H, 1);
    img_padded.row_stride_bytes = (W + 7) * sizeof(float);
    out = outputs_for(NULL, NULL, labels_u8, n);
    expect_status("segment: u8", unet_segment(model, &img_u8, NULL, &out), UNET_STATUS_OK);
    out = outputs_for(NULL, NULL, labels_u16, n);
    expect_status("segment: u16", unet_segment(model, &img_u16, NULL, &out), UNET_STATUS_OK);
    out = outputs_for(NULL, NULL, labels_strided, n);
    expect_status("segment: f32, padded rows (NaN in padding)", unet_segment(model, &img_padded, NULL, &out), UNET_STATUS_OK);
    expect_true("segment: u8, u16, strided agree with f32",
                memcmp(labels, labels_u8, sizeof labels) == 0 && memcmp(labels, labels_u16, sizeof labels) == 0 &&
                    memcmp(labels, labels_strided, sizeof labels) == 0);

    /* The colour rule: an RGB (and an RGBA) copy of the gray image gives the gray image's labels. */
    {
        static uint8_t rgb8[H * W * 3], rgba8[H * W * 4];
        static uint32_t labels_rgb[H * W], labels_rgba[H * W];
        for (size_t i = 0; i < n; i++) {
            for (int c = 0; c < 3; c++) rgb8[3 * i + c] = rgba8[4 * i + c] = img8[i];
            rgba8[4 * i + 3] = 200;
        }
        UnetImage img_rgb, img_rgba;
        unet_image_init(&img_rgb, UNET_DTYPE_U8, rgb8, W, H, 3);
        unet_image_init(&img_rgba, UNET_DTYPE_U8, rgba8, W, H, 4);
        out = outputs_for(NULL, NULL, labels_rgb, n);
        expect_status("segment: RGB u8 (luminance)", unet_segment(model, &img_rgb, NULL, &out), UNET_STATUS_OK);
        out = outputs_for(NULL, NULL, labels_rgba, n);
        expect_status("segment: RGBA u8 (luminance)", unet_segment(model, &img_rgba, NULL, &out), UNET_STATUS_OK);
        expect_true("segment: RGB and RGBA copies give the gray image's labels",
                    memcmp(labels_u8, labels_rgb, sizeof labels) == 0 && memcmp(labels_u8, labels_rgba, sizeof labels) == 0);
    }

    /* A chosen channel: channel 1 of a 2-channel image (channel 0 a ramp) gives the gray image's labels; without
       the choice the image is refused, naming the option; a channel past the last is refused. */
    {
        static uint8_t two[H * W * 2];
        static uint32_t labels_two[H * W];
        for (size_t i = 0; i < n; i++) {
            two[2 * i] = (uint8_t)(i % W);
            two[2 * i + 1] = img8[i];
        }
        UnetImage img_two;
        unet_image_init(&img_two, UNET_DTYPE_U8, two, W, H, 2);
        UnetSegmentOptions copts;
        unet_segment_options_init(&copts);
        expect_true("options: channel defaults to the colour rule (-1)", copts.channel == -1 && copts.object_size == 0.0f);
        copts.channel = 1;
        out = outputs_for(NULL, NULL, labels_two, n);
        expect_status("segment: channel 1 of 2", unet_segment(model, &img_two, &copts, &out), UNET_STATUS_OK);
        expect_true("segment: the chosen channel gives the gray image's labels", memcmp(labels_u8, labels_two, sizeof labels) == 0);
        expect_true("  scale 1 without an object size", out.scale == 1.0f && out.measured_object_size == 0.0f);
        expect_status("segment: 2 channels, none chosen", unet_segment(model, &img_two, NULL, &out), UNET_STATUS_CHANNEL_MISMATCH);
        expect_message_contains("  message names the option", "channel");
        copts.channel = 2;
        expect_status("segment: channel 2 of 2", unet_segment(model, &img_two, &copts, &out), UNET_STATUS_CHANNEL_MISMATCH);
    }

    /* Object size: half the model's size runs at scale 2 and still labels the image's grid; negative = measured. */
    {
        UnetModelInfo oinfo;
        memset(&oinfo, 0, sizeof oinfo);
        oinfo.struct_size = sizeof oinfo;
        expect_status("info: object size", unet_model_info(model, &oinfo), UNET_STATUS_OK);
        expect_true("info: the model's object size is a diameter", oinfo.object_size >= 1.0f);
        static uint32_t labels_half[H * W];
        static float probs_half[H * W];
        UnetSegmentOptions oopts;
        unet_segment_options_init(&oopts);
        oopts.object_size = oinfo.object_size / 2.0f;
        out = outputs_for(probs_half, NULL, labels_half, n);
        expect_status("segment: object size half the model's", unet_segment(model, &img_u8, &oopts, &out), UNET_STATUS_OK);
        expect_true("  scale 2 reported", fabsf(out.scale - 2.0f) < 1e-4f);
        int in_range = 1;
        uint32_t most = 0;
        for (size_t i = 0; i < n; i++) {
            in_range &= probs_half[i] >= 0.0f && probs_half[i] <= 1.0f;
            if (labels_half[i] > most) most = labels_half[i];
        }
        expect_true("  probabilities in [0, 1], labels 1..label_count", in_range && most == out.label_count && most > 0);
        oopts.object_size = -1.0f;
        out = outputs_for(NULL, NULL, labels_half, n);
        expect_status("segment: object size measured", unet_segment(model, &img_u8, &oopts, &out), UNET_STATUS_OK);
        expect_true("  the measured diameter is reported", out.measured_object_size > 0.0f);
        oopts.object_size = NAN;
        expect_status("segment: object size NaN", unet_segment(model, &img_u8, &oopts, &out), UNET_STATUS_INVALID_ARGUMENT);
        oopts.object_size = 0.5f;
        expect_status("segment: object size 0.5 px", unet_segment(model, &img_u8, &oopts, &out), UNET_STATUS_INVALID_ARGUMENT);
        /* Pixel size: this model records none, so a calibrated image runs as it is; one trained at 0.65 um
           resamples a 0.325 um image by 0.5, unless an object size is given. */
        oopts.object_size = 0.0f;
        oopts.pixel_size = 0.325f;
        out = outputs_for(NULL, NULL, labels_half, n);
        expect_status("segment: pixel size, model without one", unet_segment(model, &img_u8, &oopts, &out), UNET_STATUS_OK);
        expect_true("  scale 1", out.scale == 1.0f);
        UnetModel *calibrated = NULL;
        expect_status("load: calibrated model", unet_model_load(path_in(dir, "calibrated.onnx"), &opts, &calibrated), UNET_STATUS_OK);
        memset(&oinfo, 0, sizeof oinfo);
        oinfo.struct_size = sizeof oinfo;
        expect_status("info: calibrated", unet_model_info(calibrated, &oinfo), UNET_STATUS_OK);
        expect_true("info: pixel size 0.65 um, object size 20 px", oinfo.pixel_size == 0.65f && oinfo.object_size == 20.0f);
        expect_status("segment: 0.325 um pixels, model at 0.65", unet_segment(calibrated, &img_u8, &oopts, &out), UNET_STATUS_OK);
        expect_true("  scale 0.5", fabsf(out.scale - 0.5f) < 1e-6f);
        oopts.object_size = 10.0f;
        expect_status("segment: object size wins", unet_segment(calibrated, &img_u8, &oopts, &out), UNET_STATUS_OK);
        expect_true("  scale 2 (20 px / 10 px)", fabsf(out.scale - 2.0f) < 1e-6f);
        oopts.object_size = 0.0f;
        oopts.pixel_size = -1.0f;
        expect_status("segment: negative pixel size", unet_segment(calibrated, &img_u8, &oopts, &out), UNET_STATUS_INVALID_ARGUMENT);
        unet_model_free(calibrated);
    }

    /* Cancel from the progress callback. */
    log = (struct progress_log){0, 0, 0, 1};
    out = outputs_for(NULL, mask, NULL, n);
    expect_status("segment: cancelled by callback", unet_segment(model, &img, &sopts, &out), UNET_STATUS_CANCELLED);
    expect_true("  stopped at the first step", log.last_done == 1);
    sopts.progress = NULL;

    /* The bad-input table: each case alone, everything else valid. */
    UnetImage bad;
#define BAD_IMAGE(what, field_assignment, want)                        \
    do {                                                               \
        bad = img;                                                     \
        field_assignment;                                              \
        out = outputs_for(prob, mask, labels, n);                      \
        expect_status(what, unet_segment(model, &bad, NULL, &out), want); \
    } while (0)
    BAD_IMAGE("image: width 0", bad.width = 0, UNET_STATUS_INVALID_SIZE);
    BAD_IMAGE("image: height 0", bad.height = 0, UNET_STATUS_INVALID_SIZE);
    BAD_IMAGE("image: absurd width", bad.width = (size_t)1 << 40, UNET_STATUS_INVALID_SIZE);
    BAD_IMAGE("image: channels 0", bad.channels = 0, UNET_STATUS_INVALID_SIZE);
    BAD_IMAGE("image: unsupported dtype", bad.dtype = 9, UNET_STATUS_UNSUPPORTED_DTYPE);
    BAD_IMAGE("image: data NULL", bad.data = NULL, UNET_STATUS_NULL_ARGUMENT);
    BAD_IMAGE("image: stride smaller than a row", bad.row_stride_bytes = W * sizeof(float) - 4, UNET_STATUS_INVALID_STRIDE);
    BAD_IMAGE("image: stride not a multiple of 4", bad.row_stride_bytes = W * sizeof(float) + 2, UNET_STATUS_INVALID_STRIDE);
    BAD_IMAGE("image: rows x stride overflow", (bad.height = 1 << 20, bad.row_stride_bytes = (SIZE_MAX / 1024) & ~(size_t)15), UNET_STATUS_SIZE_OVERFLOW);
    BAD_IMAGE("image: misaligned f32 data", bad.data = (const char *)image_f32 + 1, UNET_STATUS_MISALIGNED);
    BAD_IMAGE("image: struct_size too small", bad.struct_size = 8, UNET_STATUS_STRUCT_VERSION);
    BAD_IMAGE("image: 2 channels, model has 1 (only RGB/RGBA become gray)", bad.channels = 2, UNET_STATUS_CHANNEL_MISMATCH);
    static float with_nan[H * W], with_inf[H * W];
    memcpy(with_nan, image_f32, sizeof with_nan);
    memcpy(with_inf, image_f32, sizeof with_inf);
    with_nan[5 * W + 7] = NAN;
    with_inf[9] = -INFINITY;
    BAD_IMAGE("image: NaN pixel", bad.data = with_nan, UNET_STATUS_NON_FINITE_PIXEL);
    expect_message_contains("  message names the pixel", "x=7, y=5");
    BAD_IMAGE("image: -inf pixel", bad.data = with_inf, UNET_STATUS_NON_FINITE_PIXEL);

    out = outputs_for(prob, mask, labels, n);
    expect_status("segment: model NULL", unet_segment(NULL, &img, NULL, &out), UNET_STATUS_NULL_ARGUMENT);
    expect_status("segment: image NULL", unet_segment(model, NULL, NULL, &out), UNET_STATUS_NULL_ARGUMENT);
    expect_status("segment: outputs NULL", unet_segment(model, &img, NULL, NULL), UNET_STATUS_NULL_ARGUMENT);
    out.labels_len = n - 1;
    expect_status("outputs: labels buffer too small", unet_segment(model, &img, NULL, &out), UNET_STATUS_BUFFER_TOO_SMALL);
    out = outputs_for(prob, mask, labels, n);
    out.probabilities = (float *)((char *)prob + 2);
    expect_status("outputs: misaligned probabilities", unet_segment(model, &img, NULL, &out), UNET_STATUS_MISALIGNED);
    out = outputs_for(prob, mask, labels, n);
    out.struct_size = 4;
    expect_status("outputs: struct_size too small", unet_segment(model, &img, NULL, &out), UNET_STATUS_STRUCT_VERSION);

#define BAD_OPTION(what, assignment, want)                                \
    do {                                                                  \
        unet_segment_options_init(&sopts);                                \
        assignment;                                                       \
        out = outputs_for(prob, mask, labels, n);                         \
        expect_status(what, unet_segment(model, &img, &sopts, &out), want); \
    } while (0)
    BAD_OPTION("options: connectivity 5", sopts.connectivity = 5, UNET_STATUS_INVALID_ARGUMENT);
    BAD_OPTION("options: threshold 2", sopts.threshold = 2.0f, UNET_STATUS_INVALID_ARGUMENT);
    BAD_OPTION("options: threshold NaN", sopts.threshold = NAN, UNET_STATUS_INVALID_ARGUMENT);
    BAD_OPTION("options: unknown normalisation", sopts.normalization = 9, UNET_STATUS_INVALID_ARGUMENT);
    BAD_OPTION("options: percentiles reversed",
               (sopts.normalization = UNET_NORMALIZATION_PERCENTILE, sopts.percentile_low = 90, sopts.percentile_high = 10),
               UNET_STATUS_INVALID_ARGUMENT);
    BAD_OPTION("options: struct_size too small", sopts.struct_size = 2, UNET_STATUS_STRUCT_VERSION);
    BAD_OPTION("options: explicit percentiles", (sopts.normalization = UNET_NORMALIZATION_PERCENTILE, sopts.percentile_low = 0, sopts.percentile_high = 100), UNET_STATUS_OK);
    BAD_OPTION("options: 8-connectivity, min size, threshold", (sopts.connectivity = 8, sopts.min_size = 500, sopts.threshold = 0.3f), UNET_STATUS_OK);
    expect_true("  min_size 500 drops the 20x20 square", out.label_count == SQUARES - 1);

    /* A second model with 3 input channels: RGB images work there. */
    UnetModel *rgb = NULL;
    expect_status("load: 3-channel model", unet_model_load(path_in(dir, "rgb.onnx"), &opts, &rgb), UNET_STATUS_OK);
    static float rgb_pixels[H * W * 3];
    for (size_t i = 0; i < n * 3; i++) rgb_pixels[i] = image_f32[i / 3];
    UnetImage rgb_img;
    unet_image_init(&rgb_img, UNET_DTYPE_F32, rgb_pixels, W, H, 3);
    /* Aliased or missing outputs are refused (writing one would corrupt the input or another output). */
    out = outputs_for(NULL, NULL, NULL, n);
    expect_status("outputs: none requested", unet_segment(model, &img, NULL, &out), UNET_STATUS_INVALID_ARGUMENT);
    out = outputs_for(prob, NULL, (uint32_t *)prob, n);
    expect_status("outputs: labels alias probabilities", unet_segment(model, &img, NULL, &out), UNET_STATUS_INVALID_ARGUMENT);
    expect_message_contains("outputs: alias message names both", "overlap");
    out = outputs_for((float *)img.data, NULL, NULL, n);
    expect_status("outputs: probabilities alias the image", unet_segment(model, &img, NULL, &out), UNET_STATUS_INVALID_ARGUMENT);
    out = outputs_for(prob, (uint8_t *)prob + 4, NULL, n);
    expect_status("outputs: mask inside probabilities", unet_segment(model, &img, NULL, &out), UNET_STATUS_INVALID_ARGUMENT);
    out = outputs_for(prob, NULL, NULL, n);
    expect_status("segment: RGB on 3-channel model", unet_segment(rgb, &rgb_img, NULL, &out), UNET_STATUS_OK);
    {
        float lo = 1.0f, hi = 0.0f;
        int in_range = 1;
        for (size_t i = 0; i < n; i++) {
            if (!(prob[i] >= 0.0f && prob[i] <= 1.0f)) in_range = 0;
            if (prob[i] < lo) lo = prob[i];
            if (prob[i] > hi) hi = prob[i];
        }
        expect_true("  RGB probabilities in [0, 1] and not constant", in_range && hi - lo > 1e-4f);
        /* Pixels are read as interleaved R, G, B: a different green channel changes the result. */
        static float first[H * W];
        memcpy(first, prob, sizeof first);
        for (size_t i = 0; i < n; i++) rgb_pixels[i * 3 + 1] = (float)((i * 37) % 101);
        expect_status("segment: RGB with another green", unet_segment(rgb, &rgb_img, NULL, &out), UNET_STATUS_OK);
        size_t changed = 0;
        for (size_t i = 0; i < n; i++) changed += fabsf(prob[i] - first[i]) > 1e-5f;
        expect_true("  the green channel is used", changed > n / 10);
    }
    unet_model_free(rgb);

    /* Several threads share one model and get identical results. */
    out = outputs_for(NULL, NULL, labels, n);
    unet_segment(model, &img, NULL, &out);
    pthread_t threads[4];
    struct thread_job jobs[4];
    for (int t = 0; t < 4; t++) {
        jobs[t] = (struct thread_job){model, labels, 0};
        pthread_create(&threads[t], NULL, thread_main, &jobs[t]);
    }
    int all_ok = 1;
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        all_ok &= jobs[t].ok;
    }
    expect_true("threads: 4 threads x 5 runs on one model, identical labels", all_ok);

    /* The error message is per thread and a success clears it. */
    unet_segment(NULL, &img, NULL, &out);
    expect_true("last error set", unet_last_error()[0] != '\0');
    unet_segment_options_init(&sopts);
    expect_true("last error cleared by success", unet_last_error()[0] == '\0');

    weight_map_checks();

    unet_model_free(model);
    printf("C ABI: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
