// Truly headless (java.awt.headless=true): the plugins are called through IJ.runPlugIn, options as arguments.
makeCells();
call("ij.IJ.runPlugIn", "unet.imagej.UNet_Segment", "model=@BASELINE@ provider=cpu memory=512 labels mask probabilities");
checkSegmentation();
selectImage("cells-probabilities");
ok = bitDepth() == 32 && getPixel(40, 40) > 0.5 && getPixel(5, 5) < 0.5;
check("probabilities are 32-bit in [0, 1]", ok);
checkWeightMap();
call("ij.IJ.runPlugIn", "unet.imagej.UNet_Weight_Map", "w0=10 sigma=5 balance=inverse border_width=2 target");
checkWeights();
// Every host gives the same labels: the CLI's watershed labels of a sample image with touching cells (written by
// scripts/test-imagej.sh with the same model) must equal the plugin's, pixel for pixel.
open("@SAMPLE@");
rename("sample");
call("ij.IJ.runPlugIn", "unet.imagej.UNet_Segment", "model=@BASELINE@ provider=cpu instances=watershed labels");
selectImage("sample-labels");
w = getWidth(); h = getHeight();
mine = newArray(w * h);
for (y = 0; y < h; y++) for (x = 0; x < w; x++) mine[y * w + x] = getPixel(x, y);
getStatistics(area, mean, min, maxMine);
open("@SAMPLE_LABELS@");
differ = 0;
for (y = 0; y < h; y++) for (x = 0; x < w; x++) if (getPixel(x, y) != mine[y * w + x]) differ++;
getStatistics(area, mean, min, maxCli);
check("watershed labels equal the CLI's (" + maxMine + " vs " + maxCli + " instances, " + differ + " pixels differ)", differ == 0 && maxMine == maxCli && maxCli > 1);
call("ij.IJ.runPlugIn", "unet.imagej.UNet_Segment", "model=@BASELINE@ provider=cpu instances=components labels");
selectImage("sample-labels");
getStatistics(area, mean, min, maxComponents);
check("components give fewer instances than the watershed (" + maxComponents + " < " + maxCli + ")", maxComponents < maxCli);
selectImage("cells");
// Errors reach the log with the library's message instead of crashing.
selectImage("cells");
call("ij.IJ.runPlugIn", "unet.imagej.UNet_Segment", "model=/nonexistent/model.onnx provider=cpu labels");
print("DONE");
