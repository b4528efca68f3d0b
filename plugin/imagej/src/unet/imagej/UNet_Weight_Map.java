package unet.imagej;

import com.sun.jna.Memory;
import ij.IJ;
import ij.ImagePlus;
import ij.ImageStack;
import ij.WindowManager;
import ij.gui.GenericDialog;
import ij.plugin.PlugIn;
import ij.process.ImageProcessor;

/**
 * Plugins > U-Net > U-Net Weight Map: the paper's loss weight map (32-bit) and training target (8-bit, 0/255) of
 * the current label image (8/16-bit, or 32-bit holding integers). Macro:
 * run("U-Net Weight Map", "w0=10 sigma=5 balance=inverse border_width=2 target");
 */
public class UNet_Weight_Map implements PlugIn {
    private static final String[] BALANCES = {"none", "inverse"};

    @Override
    public void run(String arg) {
        ImagePlus imp = WindowManager.getCurrentImage();
        if (imp == null) {
            Unet.error("no label image is open");
            return;
        }
        float w0, sigma;
        String balance;
        int border;
        boolean wantTarget;
        String opts = Unet.options(arg);
        if (Unet.headless()) {
            w0 = Float.parseFloat(Unet.value(opts, "w0", "10"));
            sigma = Float.parseFloat(Unet.value(opts, "sigma", "5"));
            balance = Unet.value(opts, "balance", "inverse");
            border = (int) Double.parseDouble(Unet.value(opts, "border_width", "2"));
            wantTarget = Unet.flag(opts, "target", true);
        } else {
            GenericDialog gd = new GenericDialog("U-Net Weight Map");
            gd.addNumericField("w0", 10, 2);
            gd.addNumericField("sigma", 5, 2, 6, "pixels");
            gd.addChoice("balance", BALANCES, "inverse");
            gd.addNumericField("border_width", 2, 0, 6, "pixels");
            gd.addCheckbox("target", true);
            gd.showDialog();
            if (gd.wasCanceled()) return;
            w0 = (float) gd.getNextNumber();
            sigma = (float) gd.getNextNumber();
            balance = gd.getNextChoice();
            border = (int) gd.getNextNumber();
            wantTarget = gd.getNextBoolean();
        }
        int balanceCode = java.util.Arrays.asList(BALANCES).indexOf(balance);
        if (balanceCode < 0) {
            Unet.error("balance must be none or inverse, not '" + balance + "'");
            return;
        }
        try {
            compute(imp, w0, sigma, balanceCode, border, wantTarget);
        } catch (Unet.UnetException e) {
            Unet.error(e.getMessage());
        } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
            Unet.error("libunet could not be loaded (put libunet.so in Fiji's lib/linux64): " + e.getMessage());
        }
    }

    private void compute(ImagePlus imp, float w0, float sigma, int balance, int border, boolean wantTarget) {
        int w = imp.getWidth(), h = imp.getHeight(), n = w * h;
        ImageStack weights = new ImageStack(w, h), targets = new ImageStack(w, h);
        ImageStack stack = imp.getStack();
        for (int f = 1; f <= stack.getSize(); f++) {
            IJ.showProgress(f - 1, stack.getSize());
            ImageProcessor ip = stack.getProcessor(f);
            Memory labels = new Memory(4L * n);
            int[] values = new int[n];
            for (int i = 0; i < n; i++) {
                float v = ip.getf(i);
                if (v < 0 || v != Math.rint(v)) {
                    throw new Unet.UnetException(2, "pixel " + i + " of frame " + f + " is " + v + ": labels must be non-negative integers");
                }
                values[i] = (int) v;
            }
            labels.write(0, values, 0, n);
            UnetLibrary.UnetImage img = new UnetLibrary.UnetImage();
            img.dtype = UnetLibrary.DTYPE_U32;
            img.data = labels;
            img.width = new UnetLibrary.SizeT(w);
            img.height = new UnetLibrary.SizeT(h);
            img.channels = new UnetLibrary.SizeT(1);
            UnetLibrary.UnetWeightMapOptions o = new UnetLibrary.UnetWeightMapOptions();
            Unet.check(UnetLibrary.INSTANCE.unet_weight_map_options_init(o));
            o.read();
            o.w0 = w0;
            o.sigma = sigma;
            o.balance = balance;
            o.border_width = border;
            Memory wm = new Memory(4L * n), tg = new Memory(n);
            UnetLibrary.UnetWeightMapOutputs out = new UnetLibrary.UnetWeightMapOutputs();
            out.weights = wm;
            out.weights_len = new UnetLibrary.SizeT(n);
            out.target = tg;
            out.target_len = new UnetLibrary.SizeT(n);
            Unet.check(UnetLibrary.INSTANCE.unet_weight_map(img, o, out));
            weights.addSlice(Unet.floats(wm, w, h));
            ImageProcessor t = Unet.bytes(tg, w, h);
            t.multiply(255);
            targets.addSlice(t);
        }
        IJ.showProgress(1.0);
        ImagePlus out = new ImagePlus(imp.getShortTitle() + "-weights", weights);
        out.setCalibration(imp.getCalibration().copy());
        out.resetDisplayRange();
        out.show();
        if (wantTarget) {
            ImagePlus t = new ImagePlus(imp.getShortTitle() + "-target", targets);
            t.setCalibration(imp.getCalibration().copy());
            t.show();
        }
    }
}
