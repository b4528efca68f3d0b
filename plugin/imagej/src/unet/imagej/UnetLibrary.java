package unet.imagej;

import com.sun.jna.Callback;
import com.sun.jna.IntegerType;
import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import com.sun.jna.Structure;
import com.sun.jna.ptr.PointerByReference;

/** JNA mapping of include/unet.h (libunet). Field order and types follow the header exactly. */
public interface UnetLibrary extends Library {
    UnetLibrary INSTANCE = Loader.load();

    /**
     * Finds libunet: first where JNA looks (jna.library.path, the system), then beside the plugin as ImageJ and Fiji
     * lay it out (the jar's folder, ../lib/linux64 of it, lib/linux64 of plugins.dir and of ImageJ's folder), so a
     * user need not start Java with -Djna.library.path. The error names every place tried.
     */
    final class Loader {
        private Loader() {}

        static UnetLibrary load() {
            StringBuilder tried = new StringBuilder();
            try {
                return Native.load("unet", UnetLibrary.class);
            } catch (UnsatisfiedLinkError e) {
                tried.append("the JNA search path (").append(e.getMessage()).append(")");
            }
            String name = System.mapLibraryName("unet");
            java.util.List<java.io.File> dirs = new java.util.ArrayList<>();
            try {
                java.io.File jar = new java.io.File(
                    UnetLibrary.class.getProtectionDomain().getCodeSource().getLocation().toURI());
                java.io.File folder = jar.isDirectory() ? jar : jar.getParentFile();
                dirs.add(folder);
                if (folder.getParentFile() != null) dirs.add(new java.io.File(folder.getParentFile(), "lib/linux64"));
            } catch (Exception | Error ignored) {
                // no code source (e.g. a custom class loader): the properties below still apply
            }
            for (String property : new String[] {"plugins.dir", "ij.dir", "user.dir"}) {
                String dir = System.getProperty(property);
                if (dir != null) dirs.add(new java.io.File(dir, "lib/linux64"));
            }
            for (java.io.File dir : dirs) {
                java.io.File candidate = new java.io.File(dir, name);
                tried.append(", ").append(candidate.getPath());
                if (candidate.isFile()) {
                    return Native.load(candidate.getAbsolutePath(), UnetLibrary.class);
                }
            }
            throw new UnsatisfiedLinkError("libunet not found; looked in " + tried);
        }
    }

    int DTYPE_U8 = 1, DTYPE_U16 = 2, DTYPE_F32 = 3, DTYPE_U32 = 4;
    int PROVIDER_AUTO = 0, PROVIDER_CPU = 1, PROVIDER_CUDA = 2;
    int STATUS_CANCELLED = 16;

    /** size_t. */
    class SizeT extends IntegerType {
        private static final long serialVersionUID = 1L;
        public SizeT() { this(0); }
        public SizeT(long value) { super(Native.SIZE_T_SIZE, value, true); }
    }

    @Structure.FieldOrder({"struct_size", "dtype", "data", "width", "height", "channels", "row_stride_bytes"})
    class UnetImage extends Structure {
        public int struct_size, dtype;
        public Pointer data;
        public SizeT width, height, channels, row_stride_bytes;
        public UnetImage() { struct_size = size(); width = height = channels = row_stride_bytes = new SizeT(0); }
    }

    @Structure.FieldOrder({"struct_size", "provider", "threads", "cuda_device", "ort_library_path"})
    class UnetModelOptions extends Structure {
        public int struct_size, provider, threads, cuda_device;
        public String ort_library_path;
    }

    @Structure.FieldOrder({"struct_size", "provider", "fallback_reason", "in_channels", "classes", "base_width", "depth",
            "halo", "size_step", "size_offset", "min_input", "normalization", "class_names", "provenance", "source",
            "ort_version", "ort_library"})
    class UnetModelInfo extends Structure {
        public int struct_size, provider;
        public String fallback_reason;
        public int in_channels, classes, base_width, depth, halo, size_step, size_offset, min_input;
        public String normalization, class_names, provenance, source, ort_version, ort_library;
        public UnetModelInfo() { struct_size = size(); }
    }

    interface ProgressCallback extends Callback {
        int invoke(Pointer userData, SizeT done, SizeT total);
    }

    @Structure.FieldOrder({"struct_size", "normalization", "percentile_low", "percentile_high", "threshold",
            "connectivity", "min_size", "memory_budget_bytes", "max_tile", "tiles_per_run", "progress",
            "progress_user_data", "instances", "watershed_h", "watershed_smoothing", "test_time_augmentation",
            "watershed_seed", "channel", "object_size", "pixel_size"})
    class UnetSegmentOptions extends Structure {
        public int struct_size, normalization;
        public float percentile_low, percentile_high, threshold;
        public int connectivity;
        public long min_size, memory_budget_bytes;
        public int max_tile, tiles_per_run;
        public ProgressCallback progress;
        public Pointer progress_user_data;
        /** Since 0.2: 0 = the model's recommendation, 1 = connected components, 2 = watershed. */
        public int instances;
        public float watershed_h, watershed_smoothing;
        /** Since 0.3: non-zero = average over the image and its three mirror images (4x the network time). */
        public int test_time_augmentation;
        /** Since 0.3: watershed markers from P(foreground) >= this; 0 = distance maxima; negative = the model's. */
        public float watershed_seed;
        /** Since 0.4: the channel (from 0) a one-channel model segments; negative = an RGB image's luminance. */
        public int channel;
        /** Since 0.4: the objects' diameter in pixels (resampled to the model's); 0 = as is; negative = measured. */
        public float object_size;
        /** Since 0.4: the image's micrometres per pixel (its calibration); 0 = unknown. */
        public float pixel_size;
    }

    @Structure.FieldOrder({"struct_size", "probabilities", "probabilities_len", "mask", "mask_len", "labels",
            "labels_len", "label_count", "scale", "measured_object_size"})
    class UnetOutputs extends Structure {
        public int struct_size;
        public Pointer probabilities;
        public SizeT probabilities_len;
        public Pointer mask;
        public SizeT mask_len;
        public Pointer labels;
        public SizeT labels_len;
        public int label_count;
        /** Since 0.4, set by unet_segment: model pixels per image pixel; the diameter an automatic size measured. */
        public float scale, measured_object_size;
        public UnetOutputs() {
            struct_size = size();
            probabilities_len = mask_len = labels_len = new SizeT(0);
        }
    }

    @Structure.FieldOrder({"struct_size", "w0", "sigma", "balance", "background_weight", "foreground_weight",
            "border_width"})
    class UnetWeightMapOptions extends Structure {
        public int struct_size;
        public float w0, sigma;
        public int balance;
        public float background_weight, foreground_weight;
        public int border_width;
    }

    @Structure.FieldOrder({"struct_size", "weights", "weights_len", "target", "target_len", "cells",
            "separation_pixels"})
    class UnetWeightMapOutputs extends Structure {
        public int struct_size;
        public Pointer weights;
        public SizeT weights_len;
        public Pointer target;
        public SizeT target_len;
        public long cells, separation_pixels;
        public UnetWeightMapOutputs() { struct_size = size(); weights_len = target_len = new SizeT(0); }
    }

    String unet_version();
    String unet_model_names();
    String unet_last_error();
    int unet_model_options_init(UnetModelOptions options);
    int unet_model_load(String path, UnetModelOptions options, PointerByReference out);
    void unet_model_free(Pointer model);
    int unet_model_info(Pointer model, UnetModelInfo info);
    int unet_segment_options_init(UnetSegmentOptions options);
    /** Fills every field of a struct of `size` bytes (the plain initialiser fills only the 0.1 fields). */
    int unet_segment_options_init_sized(UnetSegmentOptions options, SizeT size);
    int unet_segment(Pointer model, UnetImage image, UnetSegmentOptions options, UnetOutputs outputs);
    int unet_weight_map_options_init(UnetWeightMapOptions options);
    int unet_weight_map(UnetImage labels, UnetWeightMapOptions options, UnetWeightMapOutputs outputs);
}
