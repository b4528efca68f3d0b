/* Old and new callers of one library: a program written against the v0.1 header (its structs copied below, as a
 * caller compiled years ago has them baked in) and one whose structs are larger than today's (a newer header) must
 * both work with this library. Also checks the instance methods from C.
 * Usage: test_struct_versions MODEL_DIR   (MODEL_DIR/baseline.onnx: the intensity baseline)
 * Prints "struct versions: N passed, M failed"; exit status 1 on failure. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "unet.h"

/* ---- v0.1 structs, verbatim from the 0.1.0 header ---- */
typedef struct {
    uint32_t struct_size, provider, threads;
    int32_t cuda_device;
    const char *ort_library_path;
} UnetModelOptionsV01;
typedef struct {
    uint32_t struct_size, provider;
    const char *fallback_reason;
    uint32_t in_channels, classes, base_width, depth, halo, size_step, size_offset, min_input;
    const char *normalization, *class_names, *provenance, *source, *ort_version, *ort_library;
} UnetModelInfoV01;
typedef struct {
    uint32_t struct_size, normalization;
    float percentile_low, percentile_high, threshold;
    uint32_t connectivity;
    uint64_t min_size, memory_budget_bytes;
    uint32_t max_tile, tiles_per_run;
    UnetProgressCallback progress;
    void *progress_user_data;
} UnetSegmentOptionsV01;
typedef struct {
    uint32_t struct_size, dtype;
    const void *data;
    size_t width, height, channels, row_stride_bytes;
} UnetImageV01;
typedef struct {
    uint32_t struct_size;
    float *probabilities;
    size_t probabilities_len;
    uint8_t *mask;
    size_t mask_len;
    uint32_t *labels;
    size_t labels_len;
    uint32_t label_count;
} UnetOutputsV01;

static int passed = 0, failed = 0;
static void check(const char *what, int cond) {
    if (cond) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s (last error: %s)\n", what, unet_last_error());
    }
}

/* Two touching discs on a dark background: one connected component, two cells. */
enum { W = 120, H = 80 };
static float image[H * W];
static void make_image(void) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float a = (float)((x - 40) * (x - 40) + (y - 40) * (y - 40));
            float b = (float)((x - 76) * (x - 76) + (y - 40) * (y - 40));
            image[y * W + x] = (a <= 20 * 20 || b <= 20 * 20) ? 1000.0f : 100.0f;
        }
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    char path[4096];
    snprintf(path, sizeof path, "%s/baseline.onnx", argv[1]);
    make_image();
    static uint32_t labels_old[H * W], labels_new[H * W], labels_big[H * W];

    /* ---- a v0.1 caller ---- */
    check("v0.1 struct sizes are the frozen ones",
          sizeof(UnetModelOptionsV01) == 24 && sizeof(UnetModelInfoV01) == 96 && sizeof(UnetSegmentOptionsV01) == 64 &&
              sizeof(UnetImageV01) == 48 && sizeof(UnetOutputsV01) == 64);
    UnetModelOptionsV01 mo = {sizeof mo, UNET_PROVIDER_CPU, 1, 0, NULL};
    UnetModel *model = NULL;
    check("v0.1 model options load", unet_model_load(path, (const UnetModelOptions *)&mo, &model) == UNET_STATUS_OK);
    if (!model) return 1;
    struct {
        UnetModelInfoV01 info;
        unsigned char canary[64];
    } old_info;
    memset(&old_info, 0xAB, sizeof old_info);
    old_info.info.struct_size = sizeof old_info.info;
    check("v0.1 model info", unet_model_info(model, (UnetModelInfo *)&old_info.info) == UNET_STATUS_OK);
    check("v0.1 model info filled", old_info.info.halo > 0 && old_info.info.provenance != NULL);
    check("v0.1 model info keeps the caller's struct_size", old_info.info.struct_size == sizeof old_info.info);
    int canary_intact = 1;
    for (size_t i = 0; i < sizeof old_info.canary; i++) canary_intact &= old_info.canary[i] == 0xAB;
    check("v0.1 model info: nothing written past the caller's struct", canary_intact);

    UnetImageV01 img = {sizeof img, UNET_DTYPE_F32, image, W, H, 1, 0};
    /* A 0.1 binary calls the plain initialiser symbol (no macro then) on its 64-byte struct. */
    struct {
        UnetSegmentOptionsV01 o;
        unsigned char canary[32];
    } old_opts;
    memset(&old_opts, 0xAB, sizeof old_opts);
    check("v0.1 options init", (unet_segment_options_init)((UnetSegmentOptions *)&old_opts.o) == UNET_STATUS_OK);
    canary_intact = 1;
    for (size_t i = 0; i < sizeof old_opts.canary; i++) canary_intact &= old_opts.canary[i] == 0xAB;
    check("v0.1 options init writes nothing past the 0.1 struct", canary_intact);
    check("v0.1 options init: size and defaults", old_opts.o.struct_size == 64 && old_opts.o.connectivity == 4 &&
                                                      old_opts.o.percentile_high == 99.8f);
    UnetSegmentOptionsV01 so = old_opts.o;
    UnetOutputsV01 out = {sizeof out, NULL, 0, NULL, 0, labels_old, H * W, 0};
    check("v0.1 segment", unet_segment(model, (const UnetImage *)&img, (const UnetSegmentOptions *)&so,
                                       (UnetOutputs *)&out) == UNET_STATUS_OK);
    /* The baseline recommends nothing, so an old caller gets what it always got: connected components. */
    check("v0.1 caller gets connected components (one instance for two touching discs)", out.label_count == 1);

    /* ---- today's header ---- */
    UnetSegmentOptions opts;
    unet_segment_options_init(&opts);
    check("init (the header's macro) gives today's size", opts.struct_size == sizeof(UnetSegmentOptions) && opts.struct_size > 64);
    check("init_sized refuses a size below the 0.1 struct",
          unet_segment_options_init_sized(&opts, 63) == UNET_STATUS_STRUCT_VERSION);
    unet_segment_options_init(&opts);
    check("init: instances from the model", opts.instances == UNET_INSTANCES_MODEL);
    UnetImage img2;
    unet_image_init(&img2, UNET_DTYPE_F32, image, W, H, 1);
    UnetOutputs out2 = {.struct_size = sizeof out2, .labels = labels_new, .labels_len = H * W};
    opts.instances = UNET_INSTANCES_COMPONENTS;
    check("components", unet_segment(model, &img2, &opts, &out2) == UNET_STATUS_OK && out2.label_count == 1);
    check("components equal the v0.1 caller's labels", memcmp(labels_old, labels_new, sizeof labels_new) == 0);
    opts.instances = UNET_INSTANCES_WATERSHED;
    check("watershed splits the touching discs", unet_segment(model, &img2, &opts, &out2) == UNET_STATUS_OK &&
                                                     out2.label_count == 2);
    check("watershed: the disc centres differ", labels_new[40 * W + 40] != 0 && labels_new[40 * W + 76] != 0 &&
                                                    labels_new[40 * W + 40] != labels_new[40 * W + 76]);
    opts.watershed_h = 100.0f;
    check("watershed with a huge h merges them again",
          unet_segment(model, &img2, &opts, &out2) == UNET_STATUS_OK && out2.label_count == 1);
    opts.instances = UNET_INSTANCES_MODEL;
    check("watershed fields with instances from a model that recommends no watershed are refused, not ignored",
          unet_segment(model, &img2, &opts, &out2) == UNET_STATUS_INVALID_ARGUMENT &&
              strstr(unet_last_error(), "watershed") != NULL);
    opts.watershed_h = -1.0f;
    check("instances from the model: components, as the baseline recommends nothing",
          unet_segment(model, &img2, &opts, &out2) == UNET_STATUS_OK && out2.label_count == 1);
    opts.instances = 7;
    check("unknown instance method is rejected", unet_segment(model, &img2, &opts, &out2) == UNET_STATUS_INVALID_ARGUMENT);
    opts.instances = UNET_INSTANCES_WATERSHED;
    opts.watershed_smoothing = 1e9f;
    check("absurd smoothing is rejected", unet_segment(model, &img2, &opts, &out2) == UNET_STATUS_INVALID_ARGUMENT);
    opts.watershed_smoothing = -1.0f;
    opts.watershed_seed = 1.5f;
    check("a seed probability above 1 is rejected",
          unet_segment(model, &img2, &opts, &out2) == UNET_STATUS_INVALID_ARGUMENT &&
              strstr(unet_last_error(), "seed") != NULL);
    opts.watershed_seed = 0.5f;
    check("watershed from probability seeds", unet_segment(model, &img2, &opts, &out2) == UNET_STATUS_OK &&
                                                 out2.label_count >= 1);
    opts.watershed_seed = -1.0f;
    opts.test_time_augmentation = 1;
    check("test-time augmentation: still the two discs",
          unet_segment(model, &img2, &opts, &out2) == UNET_STATUS_OK && out2.label_count == 2);
    opts.test_time_augmentation = 0;

    /* ---- a 0.2 caller: its struct ends where 0.3's watershed_seed begins; the seed keeps its default ---- */
    size_t v02 = offsetof(UnetSegmentOptions, watershed_seed);
    check("0.2 init", unet_segment_options_init_sized(&opts, v02) == UNET_STATUS_OK && opts.struct_size == v02);
    opts.instances = UNET_INSTANCES_WATERSHED;
    opts.watershed_seed = 1.5f; /* past the 0.2 struct: never read */
    check("0.2 caller: watershed as before", unet_segment(model, &img2, &opts, &out2) == UNET_STATUS_OK &&
                                                  out2.label_count == 2);
    unet_segment_options_init(&opts);

    /* ---- a newer caller: structs larger than today's, extra fields zero ---- */
    struct {
        UnetSegmentOptions o;
        unsigned char future[40];
    } big_opts;
    memset(&big_opts, 0, sizeof big_opts);
    unet_segment_options_init(&big_opts.o);
    big_opts.o.struct_size = sizeof big_opts;
    big_opts.o.instances = UNET_INSTANCES_WATERSHED;
    struct {
        UnetOutputs o;
        unsigned char future[24];
    } big_out;
    memset(&big_out, 0, sizeof big_out);
    big_out.o.struct_size = sizeof big_out;
    big_out.o.labels = labels_big;
    big_out.o.labels_len = H * W;
    struct {
        UnetImage i;
        unsigned char future[16];
    } big_img;
    memset(&big_img, 0, sizeof big_img);
    unet_image_init(&big_img.i, UNET_DTYPE_F32, image, W, H, 1);
    big_img.i.struct_size = sizeof big_img;
    check("larger structs from a newer header are accepted",
          unet_segment(model, &big_img.i, &big_opts.o, &big_out.o) == UNET_STATUS_OK && big_out.o.label_count == 2);
    struct {
        UnetModelInfo i;
        unsigned char future[32];
    } big_info;
    memset(&big_info, 0, sizeof big_info);
    big_info.i.struct_size = sizeof big_info;
    check("larger model info accepted", unet_model_info(model, &big_info.i) == UNET_STATUS_OK &&
                                            big_info.i.struct_size == sizeof big_info && big_info.i.halo > 0);
    unet_model_free(model);
    printf("struct versions: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
