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
// Errors reach the log with the library's message instead of crashing.
selectImage("cells");
call("ij.IJ.runPlugIn", "unet.imagej.UNet_Segment", "model=/nonexistent/model.onnx provider=cpu labels");
print("DONE");
