package unet.imagej;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import com.sun.jna.ptr.PointerByReference;
import ij.IJ;
import ij.Macro;
import ij.process.ByteProcessor;
import ij.process.ColorProcessor;
import ij.process.FloatProcessor;
import ij.process.ImageProcessor;
import ij.process.ShortProcessor;
import java.awt.GraphicsEnvironment;
import java.util.HashMap;
import java.util.Map;

/** Shared plumbing of the commands: models, pixel transfer, errors. */
final class Unet {
    private Unet() {}

    /** A failed library call, with the library's message. */
    static final class UnetException extends RuntimeException {
        private static final long serialVersionUID = 1L;
        final int status;
        UnetException(int status, String message) { super(message); this.status = status; }
    }

    static void check(int status) {
        if (status != 0) throw new UnetException(status, UnetLibrary.INSTANCE.unet_last_error());
    }

    private static final Map<String, Pointer> MODELS = new HashMap<>();

    /** A cached model handle per (path, provider); "" = the embedded default. */
    /** The models embedded in libunet, by name (default first); just "default" if the library cannot say. */
    static String[] modelNames() {
        try {
            String names = UnetLibrary.INSTANCE.unet_model_names();
            if (names != null && !names.isEmpty()) return names.split(",");
        } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
            // an older libunet without unet_model_names: the default is always there
        }
        return new String[] {"default"};
    }

    static synchronized Pointer model(String path, int provider) {
        String key = path + "|" + provider;
        Pointer m = MODELS.get(key);
        if (m == null) {
            UnetLibrary.UnetModelOptions o = new UnetLibrary.UnetModelOptions();
            check(UnetLibrary.INSTANCE.unet_model_options_init(o));
            o.read();
            o.provider = provider;
            PointerByReference out = new PointerByReference();
            check(UnetLibrary.INSTANCE.unet_model_load(path.isEmpty() ? null : path, o, out));
            m = out.getValue();
            MODELS.put(key, m);
        }
        return m;
    }

    static UnetLibrary.UnetModelInfo info(Pointer model) {
        UnetLibrary.UnetModelInfo info = new UnetLibrary.UnetModelInfo();
        check(UnetLibrary.INSTANCE.unet_model_info(model, info));
        return info;
    }

    /**
     * Copies one processor's pixels to native memory and describes them. RGB goes as 3 channels whatever the model
     * takes: the library turns it into its luminance for a one-channel model (one colour rule in every host), where
     * ImageJ's own conversion would average R, G and B unweighted.
     */
    static UnetLibrary.UnetImage image(ImageProcessor ip, Memory[] keep) {
        int w = ip.getWidth(), h = ip.getHeight(), n = w * h;
        UnetLibrary.UnetImage img = new UnetLibrary.UnetImage();
        Memory mem;
        if (ip instanceof ColorProcessor) {
            int[] rgb = (int[]) ip.getPixels();
            mem = new Memory((long) n * 3);
            byte[] bytes = new byte[n * 3];
            for (int i = 0; i < n; i++) {
                bytes[3 * i] = (byte) (rgb[i] >> 16);
                bytes[3 * i + 1] = (byte) (rgb[i] >> 8);
                bytes[3 * i + 2] = (byte) rgb[i];
            }
            mem.write(0, bytes, 0, bytes.length);
            img.dtype = UnetLibrary.DTYPE_U8;
        } else if (ip instanceof ByteProcessor) {
            mem = new Memory(n);
            mem.write(0, (byte[]) ip.getPixels(), 0, n);
            img.dtype = UnetLibrary.DTYPE_U8;
        } else if (ip instanceof ShortProcessor) {
            mem = new Memory(2L * n);
            mem.write(0, (short[]) ip.getPixels(), 0, n);
            img.dtype = UnetLibrary.DTYPE_U16;
        } else {
            mem = new Memory(4L * n);
            mem.write(0, (float[]) ip.convertToFloatProcessor().getPixels(), 0, n);
            img.dtype = UnetLibrary.DTYPE_F32;
        }
        keep[0] = mem;
        img.data = mem;
        img.width = new UnetLibrary.SizeT(w);
        img.height = new UnetLibrary.SizeT(h);
        img.channels = new UnetLibrary.SizeT(ip instanceof ColorProcessor ? 3 : 1);
        img.row_stride_bytes = new UnetLibrary.SizeT(0);
        return img;
    }

    static boolean headless() {
        return GraphicsEnvironment.isHeadless();
    }

    /** Options from the macro string when there is one (headless: no dialog can be shown). */
    static String options(String arg) {
        if (arg != null && !arg.trim().isEmpty()) return arg.trim() + " ";
        String macro = Macro.getOptions();
        return macro;
    }

    static String value(String options, String key, String def) {
        return options == null ? def : Macro.getValue(options, key, def);
    }

    static boolean flag(String options, String key, boolean def) {
        if (options == null) return def;
        return (" " + options).contains(" " + key + " ") || (" " + options).contains(" " + key + "=true");
    }

    static void error(String message) {
        if (headless()) IJ.log("U-Net error: " + message);
        else IJ.error("U-Net", message);
    }

    static FloatProcessor floats(Memory m, int w, int h) {
        return new FloatProcessor(w, h, m.getFloatArray(0, w * h));
    }

    static ByteProcessor bytes(Memory m, int w, int h) {
        return new ByteProcessor(w, h, m.getByteArray(0, w * h));
    }
}
