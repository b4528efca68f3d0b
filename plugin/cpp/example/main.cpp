// Example and test of the C++ wrapper: segment an image, read the model info, compute a weight map, and see
// errors arrive as exceptions. Built with find_package(unet); run by ctest.
#include <unet/unet.hpp>

#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

static int failures = 0;
#define CHECK(cond)                                                   \
    do {                                                              \
        if (!(cond)) {                                                \
            std::printf("FAIL line %d: %s\n", __LINE__, #cond);       \
            failures++;                                               \
        }                                                             \
    } while (0)

int main() {
    std::printf("unet %s\n", unet::version().c_str());
    const size_t w = 200, h = 150;
    std::vector<uint16_t> pixels(w * h, 150);
    const int squares[3][3] = {{20, 20, 40}, {100, 30, 30}, {60, 90, 45}};
    for (auto &s : squares)
        for (int y = s[1]; y < s[1] + s[2]; y++)
            for (int x = s[0]; x < s[0] + s[2]; x++) pixels[y * w + x] = 3500;

    // The embedded default model loads with no path...
    CHECK(!unet::Model().info().provenance.empty());
    // ...the checks below use the model named by UNET_EXAMPLE_MODEL (the tests give the intensity baseline, whose
    // behaviour on bright squares is known), else the default.
    const char *path = std::getenv("UNET_EXAMPLE_MODEL");
    unet::Model model(path ? path : "");
    auto info = model.info();
    std::printf("provider %u (%s), ONNX Runtime %s from %s\n", info.provider, info.fallback_reason.c_str(),
                info.ort_version.c_str(), info.ort_library.c_str());
    CHECK(info.halo == 92 && info.in_channels == 1);

    size_t last_done = 0, total = 0;
    unet::SegmentOptions options;
    options.max_tile = 60;
    options.progress = [&](size_t done, size_t t) {
        last_done = done;
        total = t;
        return true;
    };
    auto result = model.segment(unet::ImageView::gray(pixels.data(), w, h), options, unet::Want{true, true, true});
    std::printf("%u instances, progress %zu/%zu\n", result.label_count, last_done, total);
    CHECK(result.label_count == 3);
    CHECK(last_done == total && total > 1);
    CHECK(result.labels[40 * w + 40] != 0 && result.labels[5 * w + 5] == 0);
    CHECK(result.probabilities.size() == w * h && result.mask[40 * w + 40] == 1);

    // The watershed leaves separate convex cells as they are (it splits only touching ones).
    unet::SegmentOptions watershed;
    watershed.instances = UNET_INSTANCES_WATERSHED;
    auto split = model.segment(unet::ImageView::gray(pixels.data(), w, h), watershed);
    CHECK(split.label_count == 3 && split.labels == result.labels);

    // An object size of half the model's runs at scale 2; the labels keep the image's grid and its 3 cells.
    unet::SegmentOptions sized;
    sized.object_size = 15.0f;  // the baseline records no object size: 30 px are assumed
    auto half = model.segment(unet::ImageView::gray(pixels.data(), w, h), sized);
    CHECK(half.scale == 2.0f && half.labels.size() == w * h && half.label_count == 3);

    // Threads share the model.
    std::vector<std::thread> threads;
    std::vector<uint32_t> counts(4);
    for (int t = 0; t < 4; t++)
        threads.emplace_back([&, t] { counts[t] = model.segment(unet::ImageView::gray(pixels.data(), w, h)).label_count; });
    for (auto &t : threads) t.join();
    for (auto c : counts) CHECK(c == 3);

    // Errors are exceptions with the library's status and message.
    try {
        model.segment(unet::ImageView::gray(pixels.data(), 0, h));
        CHECK(false);
    } catch (const unet::Error &e) {
        std::printf("expected error: %s\n", e.what());
        CHECK(e.status() == UNET_STATUS_INVALID_SIZE);
    }
    try {
        unet::SegmentOptions cancel;
        cancel.progress = [](size_t done, size_t) { return done < 1; };
        cancel.max_tile = 60;
        model.segment(unet::ImageView::gray(pixels.data(), w, h), cancel);
        CHECK(false);
    } catch (const unet::Error &e) {
        CHECK(e.status() == UNET_STATUS_CANCELLED);
    }
    try {
        unet::Model missing("/nonexistent/model.onnx");
        CHECK(false);
    } catch (const unet::Error &e) {
        CHECK(e.status() == UNET_STATUS_MODEL_NOT_FOUND);
    }

    // Weight map of the instance labels just found.
    auto wm = unet::weight_map(unet::ImageView::gray(result.labels.data(), w, h));
    CHECK(wm.cells == 3);
    CHECK(wm.weights.size() == w * h && wm.target[40 * w + 40] == 1);

    std::printf("C++: %s\n", failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
