import ij.IJ;
import ij.ImagePlus;
import ij.WindowManager;
import ij.gui.ProgressBar;
import ij.macro.Interpreter;
import ij.process.FloatProcessor;

import java.awt.event.KeyEvent;
import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.List;

/**
 * Host test: what a user sees of a long segmentation in ImageJ. ImageJ's progress bar is replaced (its private
 * static field) by one that records every value the plugin shows; the first run must show rising fractions ending at
 * 1, the second presses Esc (IJ.setKeyDown, as ImageJ's key listener does) at the first fraction and must stop early
 * without opening a result. Prints PASS/FAIL lines like the macros; arguments: MODEL.onnx.
 */
public class ProgressAndEscape {
    static final List<Double> shown = new ArrayList<>();
    static boolean pressEscape;

    public static void main(String[] args) throws Exception {
        String model = args[0];
        Interpreter.batchMode = true; // images without windows, as in a headless macro
        ProgressBar recorder = new ProgressBar(100, 20) {
            @Override
            public void show(double progress, boolean showInBatchMode) {
                shown.add(progress);
                if (pressEscape && progress > 0 && progress < 1) IJ.setKeyDown(KeyEvent.VK_ESCAPE);
            }
        };
        Field bar = IJ.class.getDeclaredField("progressBar");
        bar.setAccessible(true);
        bar.set(null, recorder);
        // 1500x1500 with a 64 MB budget: many tiles, so many progress calls.
        String options = "model=" + model + " provider=cpu memory=64 labels";

        run("whole", options);
        int fractions = 0;
        boolean rising = true;
        double last = -1;
        for (double p : shown) {
            if (p > 0 && p < 1) fractions++;
            if (p < 1 && p < last) rising = false;
            if (p < 1) last = p;
        }
        int wholeCalls = shown.size();
        check("the progress bar shows at least 4 fractions between 0 and 1 (" + fractions + ")", fractions >= 4);
        check("the fractions rise", rising);
        check("the bar ends at 1", !shown.isEmpty() && shown.get(shown.size() - 1) == 1.0);
        check("the labels image opened", WindowManager.getImage("whole-labels") != null);

        shown.clear();
        pressEscape = true;
        run("cancelled", options);
        pressEscape = false;
        int cancelledCalls = shown.size();
        check("Esc stops the run early (" + cancelledCalls + " progress calls against " + wholeCalls + ")",
                cancelledCalls > 0 && cancelledCalls < wholeCalls / 2);
        check("a cancelled run opens no result", WindowManager.getImage("cancelled-labels") == null);
        check("the bar is reset at the end of a cancelled run",
                !shown.isEmpty() && shown.get(shown.size() - 1) == 1.0);
        System.out.println("DONE");
        System.exit(0);
    }

    static void run(String title, String options) {
        FloatProcessor fp = new FloatProcessor(1500, 1500);
        for (int y = 0; y < 1500; y++)
            for (int x = 0; x < 1500; x++)
                fp.setf(x, y, ((x / 30) + (y / 30)) % 3 == 0 ? 200f : 10f);
        ImagePlus imp = new ImagePlus(title, fp);
        imp.show();
        WindowManager.setTempCurrentImage(imp);
        IJ.runPlugIn("unet.imagej.UNet_Segment", options);
    }

    static void check(String what, boolean ok) {
        System.out.println((ok ? "PASS " : "FAIL ") + what);
    }
}
