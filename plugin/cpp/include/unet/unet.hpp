// unet.hpp: a header-only C++17 RAII wrapper over the C ABI in unet.h.
//
//   unet::Model model;                                  // embedded default model (or unet::Model("m.onnx"))
//   auto result = model.segment(unet::ImageView::gray(pixels.data(), width, height));
//   // result.labels, result.mask, result.probabilities (std::vector), result.label_count
//
// Every failure throws unet::Error carrying the library's status code and message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "unet.h"

namespace unet {

/// A failed call: the status code and the library's message.
class Error : public std::runtime_error {
public:
    Error(UnetStatus status, const std::string &message) : std::runtime_error(message), status_(status) {}
    UnetStatus status() const noexcept { return status_; }

private:
    UnetStatus status_;
};

namespace detail {
inline void check(UnetStatus status) {
    if (status != UNET_STATUS_OK) {
        const char *msg = unet_last_error();
        throw Error(status, std::string(unet_status_string(status)) + ": " + (msg ? msg : ""));
    }
}
template <typename T> constexpr uint32_t dtype_of();
template <> constexpr uint32_t dtype_of<uint8_t>() { return UNET_DTYPE_U8; }
template <> constexpr uint32_t dtype_of<uint16_t>() { return UNET_DTYPE_U16; }
template <> constexpr uint32_t dtype_of<float>() { return UNET_DTYPE_F32; }
template <> constexpr uint32_t dtype_of<uint32_t>() { return UNET_DTYPE_U32; }
}  // namespace detail

inline std::string version() { return unet_version(); }

/// A borrowed image: rows of width pixels x channels interleaved values, row_stride_bytes apart (0 = packed).
struct ImageView {
    UnetImage raw;

    template <typename T>
    static ImageView of(const T *data, size_t width, size_t height, size_t channels = 1, size_t row_stride_bytes = 0) {
        ImageView v{};
        detail::check(unet_image_init(&v.raw, detail::dtype_of<T>(), data, width, height, channels));
        v.raw.row_stride_bytes = row_stride_bytes;
        return v;
    }
    template <typename T> static ImageView gray(const T *data, size_t width, size_t height) {
        return of(data, width, height, 1, 0);
    }
    size_t width() const { return raw.width; }
    size_t height() const { return raw.height; }
};

/// Which outputs to compute.
struct Want {
    bool probabilities = false;
    bool mask = true;
    bool labels = true;
};

struct SegmentOptions {
    float threshold = 0.0f;  // 0 = the model's recommendation, else argmax
    unsigned connectivity = 4;
    uint64_t min_size = 0;  // 0 = the model's recommendation, else none
    /// UNET_INSTANCES_MODEL (what the model recommends), UNET_INSTANCES_COMPONENTS or UNET_INSTANCES_WATERSHED.
    uint32_t instances = UNET_INSTANCES_MODEL;
    float watershed_h = -1.0f;          // < 0 = the model's recommendation, else 2
    float watershed_smoothing = -1.0f;  // < 0 = the model's recommendation, else 1
    /// Watershed markers: (0, 1] = regions where P(foreground) >= this; 0 = distance maxima (watershed_h);
    /// < 0 = the model's recommendation.
    float watershed_seed = -1.0f;
    /// Average the network over the image and its three mirror images (4x the network time, fewer merged cells).
    bool test_time_augmentation = false;
    uint64_t memory_budget_bytes = 0;  // 0 = default
    uint32_t max_tile = 0;
    /// The channel (from 0) of a multi-channel image a one-channel model segments; -1 = RGB/RGBA luminance.
    int32_t channel = -1;
    /// The objects' diameter in pixels (resampled to the model's); 0 = as is; < 0 = measured by a first pass.
    float object_size = 0.0f;
    /// The image's micrometres per pixel (0 = unknown): resampled to the model's when it records one.
    float pixel_size = 0.0f;
    /// Called with (done, total); return false to cancel (segment then throws Error with UNET_STATUS_CANCELLED).
    std::function<bool(size_t, size_t)> progress;
};

struct Segmentation {
    std::vector<float> probabilities;
    std::vector<uint8_t> mask;
    std::vector<uint32_t> labels;
    uint32_t label_count = 0;
    /// Model pixels per image pixel the network ran at (1 = the image as it is).
    float scale = 1.0f;
    /// The median instance diameter an automatic object size measured (0 = none).
    float measured_object_size = 0.0f;
};

struct ModelOptions {
    uint32_t provider = UNET_PROVIDER_AUTO;
    uint32_t threads = 0;
    std::string ort_library;  // empty = search
};

/// What a loaded model is and how it runs.
struct ModelInfo {
    uint32_t provider, in_channels, classes, halo;
    std::string fallback_reason, normalization, provenance, ort_version, ort_library;
};

/// An owned model handle; movable, not copyable; shareable across threads by reference.
class Model {
public:
    /// Loads `path`, or the embedded default model when `path` is empty.
    explicit Model(const std::string &path = "", const ModelOptions &options = {}) {
        UnetModelOptions o;
        detail::check(unet_model_options_init(&o));
        o.provider = options.provider;
        o.threads = options.threads;
        o.ort_library_path = options.ort_library.empty() ? nullptr : options.ort_library.c_str();
        UnetModel *m = nullptr;
        detail::check(unet_model_load(path.empty() ? nullptr : path.c_str(), &o, &m));
        handle_.reset(m);
    }

    ModelInfo info() const {
        UnetModelInfo i{};
        i.struct_size = sizeof i;
        detail::check(unet_model_info(handle_.get(), &i));
        return ModelInfo{i.provider, i.in_channels, i.classes, i.halo,
                         i.fallback_reason ? i.fallback_reason : "", i.normalization, i.provenance,
                         i.ort_version, i.ort_library};
    }

    Segmentation segment(const ImageView &image, const SegmentOptions &options = {}, const Want &want = {}) const {
        Segmentation r;
        segment_into(image, r, options, want);
        return r;
    }

    /// segment() into `r`'s vectors, which keep their storage from call to call: a live loop over frames of one
    /// size allocates no output memory after the first frame. Outputs not wanted are left empty.
    void segment_into(const ImageView &image, Segmentation &r, const SegmentOptions &options = {},
                      const Want &want = {}) const {
        const size_t n = image.width() * image.height();
        UnetOutputs out{};
        out.struct_size = sizeof out;
        r.probabilities.resize(want.probabilities ? n : 0);
        r.mask.resize(want.mask ? n : 0);
        r.labels.resize(want.labels ? n : 0);
        r.label_count = 0;
        if (want.probabilities) {
            out.probabilities = r.probabilities.data();
            out.probabilities_len = n;
        }
        if (want.mask) {
            out.mask = r.mask.data();
            out.mask_len = n;
        }
        if (want.labels) {
            out.labels = r.labels.data();
            out.labels_len = n;
        }
        UnetSegmentOptions o;
        detail::check(unet_segment_options_init(&o));
        o.threshold = options.threshold;
        o.connectivity = options.connectivity;
        o.min_size = options.min_size;
        o.instances = options.instances;
        o.watershed_h = options.watershed_h;
        o.watershed_smoothing = options.watershed_smoothing;
        o.watershed_seed = options.watershed_seed;
        o.test_time_augmentation = options.test_time_augmentation ? 1 : 0;
        o.memory_budget_bytes = options.memory_budget_bytes;
        o.max_tile = options.max_tile;
        o.channel = options.channel;
        o.object_size = options.object_size;
        o.pixel_size = options.pixel_size;
        if (options.progress) {
            o.progress = [](void *user, size_t done, size_t total) -> int32_t {
                auto *f = static_cast<const std::function<bool(size_t, size_t)> *>(user);
                try {
                    return (*f)(done, total) ? 0 : 1;
                } catch (...) {
                    return 1;  // an exception must not cross the C library: cancel instead
                }
            };
            o.progress_user_data = const_cast<std::function<bool(size_t, size_t)> *>(&options.progress);
        }
        detail::check(unet_segment(handle_.get(), &image.raw, &o, &out));
        r.label_count = out.label_count;
        r.scale = out.scale;
        r.measured_object_size = out.measured_object_size;
    }

    const UnetModel *get() const noexcept { return handle_.get(); }

private:
    struct Free {
        void operator()(UnetModel *m) const noexcept { unet_model_free(m); }
    };
    std::unique_ptr<UnetModel, Free> handle_;
};

struct WeightMapOptions {
    float w0 = 10.0f, sigma = 5.0f;
    uint32_t balance = UNET_CLASS_BALANCE_INVERSE_FREQUENCY;
    float background_weight = 1.0f, foreground_weight = 1.0f;
    uint32_t border_width = 2;
};

struct WeightMap {
    std::vector<float> weights;
    std::vector<uint8_t> target;
    uint64_t cells = 0;
};

/// The paper's loss weight map and training target from instance labels (u8/u16/u32 ImageView).
inline WeightMap weight_map(const ImageView &labels, const WeightMapOptions &options = {}) {
    const size_t n = labels.width() * labels.height();
    WeightMap r;
    r.weights.resize(n);
    r.target.resize(n);
    UnetWeightMapOptions o;
    detail::check(unet_weight_map_options_init(&o));
    o.w0 = options.w0;
    o.sigma = options.sigma;
    o.balance = options.balance;
    o.background_weight = options.background_weight;
    o.foreground_weight = options.foreground_weight;
    o.border_width = options.border_width;
    UnetWeightMapOutputs out{};
    out.struct_size = sizeof out;
    out.weights = r.weights.data();
    out.weights_len = n;
    out.target = r.target.data();
    out.target_len = n;
    detail::check(unet_weight_map(&labels.raw, &o, &out));
    r.cells = out.cells;
    return r;
}

}  // namespace unet
