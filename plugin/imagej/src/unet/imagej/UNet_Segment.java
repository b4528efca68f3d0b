package unet.imagej;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import ij.IJ;
import ij.ImagePlus;
import ij.ImageStack;
import ij.WindowManager;
import ij.gui.GenericDialog;
import ij.plugin.PlugIn;
import ij.process.FloatProcessor;
import ij.process.ImageProcessor;
import ij.process.ShortProcessor;

/**
 * Plugins > U-Net > U-Net Segment: segments the current image (stacks frame by frame) into instance labels
 * (16-bit, or 32-bit when there are more than 65535 instances), a mask and optionally probabilities.
 * Macro: run("U-Net Segment", "embedded=default model=[] provider=auto instances=model memory=1024 min_size=0 labels mask [tta]
 * [watershed_h=2 watershed_smoothing=1 watershed_seed=0.8] [channel=-1] [object_size=0]"); the watershed fields default to
 * -1 (the model's). channel: the channel (from 0) of an RGB image or a multi-channel hyperstack to segment (-1: an RGB
 * image's luminance; a hyperstack needs one). object_size: the objects' diameter in pixels, resampled to the model's
 * (0 = as is, -1 = measured from a first pass).
 * embedded: a model compiled into libunet (the chooser lists them: default, em, cells); model: an .onnx file or a
 * bioimage.io model package (.zip, rdf.yaml) with ONNX weights, which wins
 * when given. instances: model (what the model recommends), components, or watershed (splits touching cells).
 * headless: call("ij.IJ.runPlugIn", "unet.imagej.UNet_Segment", "provider=cpu labels mask").
 */
public class UNet_Segment implements PlugIn {
    private static final String[] PROVIDERS = {"auto", "cpu", "cuda"};
    // Index = UnetInstances value.
    private static final String[] INSTANCES = {"model", "components", "watershed"};
    private static final String[] WATERSHED = {"watershed_h", "watershed_smoothing", "watershed_seed"};

    @Override
    public void run(String arg) {
        ImagePlus imp = WindowManager.getCurrentImage();
        if (imp == null) {
            Unet.error("no image is open");
            return;
        }
        String model, provider, instances;
        int memory, minSize, channel;
        double objectSize;
        boolean wantLabels, wantMask, wantProbs, tta;
        // Watershed parameters; negative = the model's recommendation (as in the C struct).
        double[] watershed = new double[3];
        String opts = Unet.options(arg);
        String embedded;
        if (Unet.headless()) {
            embedded = Unet.value(opts, "embedded", "default");
            model = Unet.value(opts, "model", "");
            provider = Unet.value(opts, "provider", "auto");
            instances = Unet.value(opts, "instances", "model");
            memory = (int) Double.parseDouble(Unet.value(opts, "memory", "1024"));
            minSize = (int) Double.parseDouble(Unet.value(opts, "min_size", "0"));
            wantLabels = Unet.flag(opts, "labels", true);
            wantMask = Unet.flag(opts, "mask", true);
            wantProbs = Unet.flag(opts, "probabilities", false);
            tta = Unet.flag(opts, "tta", false);
            for (int i = 0; i < WATERSHED.length; i++)
                watershed[i] = Double.parseDouble(Unet.value(opts, WATERSHED[i], "-1"));
            channel = (int) Double.parseDouble(Unet.value(opts, "channel", "-1"));
            objectSize = Double.parseDouble(Unet.value(opts, "object_size", "0"));
        } else {
            GenericDialog gd = new GenericDialog("U-Net Segment");
            String[] names = Unet.modelNames();
            gd.addChoice("embedded", names, names[0]);
            gd.addStringField("model", "", 30);
            gd.addMessage("(an .onnx file, or a bioimage.io model package: .zip or rdf.yaml, instead of the embedded\n"
                + "model above; empty = use the embedded one)");
            gd.addChoice("provider", PROVIDERS, "auto");
            gd.addChoice("instances", INSTANCES, "model");
            gd.addNumericField("memory", 1024, 0, 6, "MiB (decides the tile size)");
            gd.addNumericField("min_size", 0, 0, 6, "pixels");
            gd.addCheckbox("labels", true);
            gd.addCheckbox("mask", true);
            gd.addCheckbox("probabilities", false);
            gd.addCheckbox("tta", false);
            gd.addMessage("(tta: test-time augmentation, the average over the image and its mirror images; 4x slower)");
            gd.addNumericField("watershed_h", -1, 2, 6, "pixels of distance (larger merges more)");
            gd.addNumericField("watershed_smoothing", -1, 2, 6, "pixels");
            gd.addNumericField("watershed_seed", -1, 2, 6, "probability (0 = distance maxima)");
            gd.addMessage("(watershed fields: -1 = the model's recommendation; with instances=model they adjust the\n"
                + "model's watershed, an error if it recommends none)");
            gd.addNumericField("channel", -1, 0, 6, "from 0 (-1 = RGB luminance)");
            gd.addNumericField("object_size", 0, 1, 6, "pixels across (0 = as is, -1 = measure)");
            gd.showDialog();
            if (gd.wasCanceled()) return;
            embedded = gd.getNextChoice();
            model = gd.getNextString().trim();
            provider = gd.getNextChoice();
            instances = gd.getNextChoice();
            memory = (int) gd.getNextNumber();
            minSize = (int) gd.getNextNumber();
            wantLabels = gd.getNextBoolean();
            wantMask = gd.getNextBoolean();
            wantProbs = gd.getNextBoolean();
            tta = gd.getNextBoolean();
            for (int i = 0; i < WATERSHED.length; i++) watershed[i] = gd.getNextNumber();
            channel = (int) gd.getNextNumber();
            objectSize = gd.getNextNumber();
        }
        // A file wins; else the embedded model by name ("default" is the library's NULL path).
        if (model.isEmpty() && !embedded.equals("default")) model = embedded;
        int providerCode = java.util.Arrays.asList(PROVIDERS).indexOf(provider);
        if (providerCode < 0) {
            Unet.error("provider must be auto, cpu or cuda, not '" + provider + "'");
            return;
        }
        int instanceCode = java.util.Arrays.asList(INSTANCES).indexOf(instances);
        if (instanceCode < 0) {
            Unet.error("instances must be model, components or watershed, not '" + instances + "'");
            return;
        }
        if (!(wantLabels || wantMask || wantProbs)) {
            Unet.error("choose at least one output");
            return;
        }
        try {
            segment(imp, model, providerCode, instanceCode, memory, minSize, wantLabels, wantMask, wantProbs, tta,
                    watershed, channel, objectSize);
        } catch (Unet.UnetException e) {
            Unet.error(e.getMessage());
        } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
            Unet.error("libunet could not be loaded (put libunet.so in Fiji's lib/linux64): " + e.getMessage());
        } finally {
            IJ.showProgress(1.0);
        }
    }

    private void segment(ImagePlus imp, String modelPath, int provider, int instances, int memoryMb, int minSize,
                         boolean wantLabels, boolean wantMask, boolean wantProbs, boolean tta, double[] watershed,
                         int channel, double objectSize) {
        int w = imp.getWidth(), h = imp.getHeight(), n = w * h;
        ImageStack stack = imp.getStack();
        // A multi-channel hyperstack: the chosen channel's slices (every z and t) are the frames; an RGB image's
        // channel goes to the library with the pixels.
        int nc = imp.getNChannels();
        if (nc > 1 && (channel < 0 || channel >= nc)) {
            throw new Unet.UnetException(18, "the image has " + nc + " channels: choose one with channel=0.."
                    + (nc - 1));
        }
        int[] slices = new int[stack.getSize() / Math.max(nc, 1)];
        if (nc > 1) {
            int k = 0;
            for (int t = 1; t <= imp.getNFrames(); t++)
                for (int z = 1; z <= imp.getNSlices(); z++) slices[k++] = imp.getStackIndex(channel + 1, z, t);
        } else {
            for (int i = 0; i < slices.length; i++) slices[i] = i + 1;
        }
        int libraryChannel = nc > 1 ? -1 : channel;
        Pointer model = Unet.model(modelPath, provider);
        int frames = slices.length;
        int[][] labels = new int[frames][];
        ImageStack maskStack = new ImageStack(w, h), probStack = new ImageStack(w, h);
        int maxCount = 0;
        float scale = 1.0f, measured = 0.0f;
        IJ.resetEscape();
        for (int f = 0; f < frames; f++) {
            final int frame = f;
            UnetLibrary.ProgressCallback progress = (user, done, total) -> {
                IJ.showProgress((frame * total.doubleValue() + done.doubleValue()) / (frames * total.doubleValue()));
                return IJ.escapePressed() ? 1 : 0;
            };
            Memory[] keep = new Memory[1];
            UnetLibrary.UnetImage img = Unet.image(stack.getProcessor(slices[f]), keep);
            UnetLibrary.UnetSegmentOptions o = new UnetLibrary.UnetSegmentOptions();
            Unet.check(UnetLibrary.INSTANCE.unet_segment_options_init_sized(o, new UnetLibrary.SizeT(o.size())));
            o.read();
            o.min_size = minSize;
            o.instances = instances;
            o.test_time_augmentation = tta ? 1 : 0;
            o.watershed_h = (float) watershed[0];
            o.watershed_smoothing = (float) watershed[1];
            o.watershed_seed = (float) watershed[2];
            o.memory_budget_bytes = (long) memoryMb << 20;
            o.channel = libraryChannel;
            o.pixel_size = (float) micronsPerPixel(imp);
            o.object_size = (float) objectSize;
            o.progress = progress;
            UnetLibrary.UnetOutputs out = new UnetLibrary.UnetOutputs();
            Memory lab = wantLabels ? new Memory(4L * n) : null;
            Memory mask = wantMask ? new Memory(n) : null;
            Memory prob = wantProbs ? new Memory(4L * n) : null;
            out.labels = lab;
            out.labels_len = new UnetLibrary.SizeT(wantLabels ? n : 0);
            out.mask = mask;
            out.mask_len = new UnetLibrary.SizeT(wantMask ? n : 0);
            out.probabilities = prob;
            out.probabilities_len = new UnetLibrary.SizeT(wantProbs ? n : 0);
            int status = UnetLibrary.INSTANCE.unet_segment(model, img, o, out);
            if (status == UnetLibrary.STATUS_CANCELLED) {
                IJ.showStatus("U-Net: cancelled");
                return;
            }
            Unet.check(status);
            out.read();
            if (f == 0) {
                scale = out.scale;
                measured = out.measured_object_size;
                if (scale != 1.0f)
                    IJ.log("U-Net: segmented at scale " + scale
                            + (measured > 0 ? " (objects measured " + measured + " px)" : ""));
            }
            if (wantLabels) {
                labels[f] = lab.getIntArray(0, n);
                maxCount = Math.max(maxCount, out.label_count);
            }
            if (wantMask) {
                ImageProcessor m = Unet.bytes(mask, w, h);
                m.multiply(255); // class 1 -> 255, ImageJ's binary convention
                maskStack.addSlice(m);
            }
            if (wantProbs) probStack.addSlice(Unet.floats(prob, w, h));
        }
        String title = imp.getShortTitle();
        // What ran, readable from a macro: Property.get("unet.scale") on a result image.
        String[] props = {"unet.scale", String.valueOf(scale), "unet.measured_object_size", String.valueOf(measured)};
        if (wantLabels) show(labelStack(labels, w, h, maxCount), title + "-labels", imp, maxCount, props);
        if (wantMask) show(maskStack, title + "-mask", imp, 255, props);
        if (wantProbs) show(probStack, title + "-probabilities", imp, 1, props);
        IJ.log("U-Net: " + imp.getTitle() + ": " + maxCount + " instance(s) in the largest frame");
    }

    /** The image's calibration in micrometres per pixel (0 when it is not calibrated in a length unit). */
    static double micronsPerPixel(ImagePlus imp) {
        ij.measure.Calibration cal = imp.getCalibration();
        if (cal == null || !cal.scaled()) return 0;
        String unit = cal.getUnit().trim();
        double factor;
        switch (unit) {
            case "micron": case "microns": case "um": case "\u00B5m": case "\u03BCm": factor = 1; break;
            case "nm": factor = 1e-3; break;
            case "mm": factor = 1e3; break;
            default: return 0;
        }
        return cal.pixelWidth * factor;
    }

    /** 16-bit when the labels fit, else 32-bit float (exact up to 2^24); never silently truncated. */
    private static ImageStack labelStack(int[][] labels, int w, int h, int maxCount) {
        if (maxCount > (1 << 24)) {
            throw new Unet.UnetException(2, maxCount + " instances do not fit an ImageJ image exactly (at most 16777216)");
        }
        ImageStack s = new ImageStack(w, h);
        for (int[] frame : labels) {
            if (maxCount <= 65535) {
                short[] px = new short[frame.length];
                for (int i = 0; i < px.length; i++) px[i] = (short) frame[i];
                s.addSlice(new ShortProcessor(w, h, px, null));
            } else {
                float[] px = new float[frame.length];
                for (int i = 0; i < px.length; i++) px[i] = frame[i];
                s.addSlice(new FloatProcessor(w, h, px));
            }
        }
        return s;
    }

    private static void show(ImageStack stack, String title, ImagePlus source, double max, String[] props) {
        ImagePlus out = new ImagePlus(title, stack);
        for (int i = 0; i + 1 < props.length; i += 2) out.setProp(props[i], props[i + 1]);
        out.setCalibration(source.getCalibration().copy());
        out.setDisplayRange(0, Math.max(max, 1));
        out.show();
    }
}
