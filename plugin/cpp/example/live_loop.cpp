// A live acquisition loop as microscope software runs it: a camera hands over 16-bit frames in its own buffer
// (rows padded to 64 bytes, so strided), one model segments each frame into output buffers reused from frame to
// frame, and the loop prints each frame's latency and the median.
//
//   live_loop [WIDTH HEIGHT FRAMES [bench]]   (default 512 512 20; the model from UNET_EXAMPLE_MODEL, else the
//                                             default)
//
// As a test (ctest) it also checks what a live loop relies on: the strided frame gives the labels of a packed copy,
// the output buffers never move after the first frame, and every frame finds the cells the camera saw. `bench`
// (make bench) drops the cell count check (a trained model's count is its own business) and times the same frames
// once more with fresh output vectors per frame (`segment()`), the reference for the reuse.
#include <unet/unet.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

/// A fake camera: bright round cells on a dim, slightly noisy background, drifting from frame to frame, written
/// into a frame buffer whose rows are `stride` bytes apart.
struct Camera {
    size_t width, height, stride;
    std::vector<uint8_t> buffer;
    unsigned noise = 12345;

    Camera(size_t w, size_t h) : width(w), height(h), stride((w * 2 + 63) / 64 * 64 + 64), buffer(stride * h) {}

    /// Fills the buffer with frame `t`; returns how many cells lie fully inside it.
    int capture(int t) {
        int cells = 0;
        for (size_t y = 0; y < height; y++) {
            auto *row = reinterpret_cast<uint16_t *>(buffer.data() + y * stride);
            for (size_t x = 0; x < width; x++) {
                noise = noise * 1103515245u + 12345u;
                row[x] = static_cast<uint16_t>(400 + (noise >> 16) % 50);
            }
        }
        const int r = 12, spacing = 48;
        for (int cy = spacing / 2; cy + r < static_cast<int>(height); cy += spacing)
            for (int cx = spacing / 2 + (t % 8); cx + r < static_cast<int>(width); cx += spacing) {
                cells++;
                for (int y = cy - r; y <= cy + r; y++) {
                    auto *row = reinterpret_cast<uint16_t *>(buffer.data() + y * stride);
                    for (int x = cx - r; x <= cx + r; x++)
                        if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r) row[x] = 3000;
                }
            }
        return cells;
    }

    unet::ImageView view() const {
        return unet::ImageView::of(reinterpret_cast<const uint16_t *>(buffer.data()), width, height, 1, stride);
    }
};

}  // namespace

int main(int argc, char **argv) {
    const size_t width = argc > 2 ? std::strtoul(argv[1], nullptr, 10) : 512;
    const size_t height = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 512;
    const int frames = argc > 3 ? std::atoi(argv[3]) : 20;
    const bool bench = argc > 4 && std::strcmp(argv[4], "bench") == 0;
    const char *path = std::getenv("UNET_EXAMPLE_MODEL");
    unet::Model model(path ? path : "");
    Camera camera(width, height);
    std::printf("live loop: %zux%zu u16 frames, row stride %zu bytes, %d frames, model %s\n", width, height,
                camera.stride, frames, path ? path : "(default)");

    unet::Segmentation result;  // reused: its vectors keep their storage from frame to frame
    unet::SegmentOptions options;
    options.instances = UNET_INSTANCES_COMPONENTS;  // the test's cells never touch
    const unet::Want want{false, true, true};
    std::vector<double> latencies;
    int failures = 0;
    const uint32_t *labels_storage = nullptr;
    for (int t = 0; t < frames; t++) {
        const int cells = camera.capture(t);
        const auto start = std::chrono::steady_clock::now();
        model.segment_into(camera.view(), result, options, want);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        latencies.push_back(ms);
        std::printf("frame %3d: %7.2f ms, %u instances (%d cells in view)\n", t, ms, result.label_count, cells);
        if (!bench && result.label_count != static_cast<uint32_t>(cells)) {
            std::printf("FAIL frame %d: %u instances, the camera saw %d cells\n", t, result.label_count, cells);
            failures++;
        }
        if (t == 0) {
            labels_storage = result.labels.data();
            // The strided camera buffer gives what a packed copy of the same frame gives.
            std::vector<uint16_t> packed(width * height);
            for (size_t y = 0; y < height; y++)
                std::memcpy(&packed[y * width], camera.buffer.data() + y * camera.stride, width * 2);
            auto reference = model.segment(unet::ImageView::gray(packed.data(), width, height), options, want);
            if (reference.labels != result.labels || reference.mask != result.mask) {
                std::printf("FAIL: the strided frame's labels differ from a packed copy's\n");
                failures++;
            }
        } else if (result.labels.data() != labels_storage) {
            std::printf("FAIL frame %d: the output buffer was reallocated\n", t);
            failures++;
        }
    }
    auto median_of = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    const double median = median_of(latencies);
    // The first frame pays for ONNX Runtime's warm-up; the median is the steady state.
    std::printf("median latency %.2f ms per %zux%zu frame (first frame %.2f ms, fastest %.2f ms), %.1f frames/s\n",
                median, width, height, latencies[0], *std::min_element(latencies.begin(), latencies.end()),
                1000.0 / median);
    if (bench) {
        std::vector<double> fresh;
        for (int t = 0; t < frames; t++) {
            camera.capture(t);
            const auto start = std::chrono::steady_clock::now();
            const auto r = model.segment(camera.view(), options, want);
            (void)r;
            fresh.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
        }
        const double reference = median_of(fresh);
        std::printf("fresh output vectors per frame: median %.2f ms; reused / fresh = %.3f\n", reference,
                    median / reference);
    }
    std::printf("live loop: %s\n", failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
