// Truly headless (java.awt.headless=true): the plugins are called through IJ.runPlugIn, options as arguments.
makeCells();
call("ij.IJ.runPlugIn", "unet.imagej.UNet_Segment", "model=@BASELINE@ provider=cpu memory=512 labels mask probabilities");
checkSegmentation();
selectImage("cells-probabilities");
ok = bitDepth() == 32 && getPixel(40, 40) > 0.5 && getPixel(5, 5) < 0.5;
check("probabilities are 32-bit in [0, 1]", ok);
// The same network as a bioimage.io package (what users download from bioimage.io) gives the same segmentation.
close("cells-labels");
close("cells-mask");
close("cells-probabilities");
selectImage("cells");
call("ij.IJ.runPlugIn", "unet.imagej.UNet_Segment", "model=@PACKAGE@ provider=cpu memory=512 labels mask");
checkSegmentation();
checkWeightMap();
call("ij.IJ.runPlugIn", "unet.imagej.UNet_Weight_Map", "w0=10 sigma=5 balance=inverse border_width=2 target");
checkWeights();
// More than 65535 instances: the labels come out 32-bit, every instance numbered (69696 4x4 squares).
newImage("many", "16-bit black", 2112, 2112, 1);
setColor(100);
fillRect(0, 0, 2112, 2112);
setColor(3000);
for (y = 0; y < 2112; y += 8) {
    for (x = 0; x < 2112; x += 8) {
        fillRect(x + 2, y + 2, 4, 4);
    }
}
call("ij.IJ.runPlugIn", "unet.imagej.UNet_Segment", "model=@BASELINE@ provider=cpu memory=512 labels");
selectImage("many-labels");
getStatistics(area, mean, min, max);
ok = bitDepth() == 32 && max == 69696;
check("69696 instances come out 32-bit, all numbered", ok);
// Colour: an RGB image goes to the library as 3 channels and is segmented as its BT.601 luminance (one rule in
// every host). A pure green square (luminance 150) is foreground; a pure blue one (luminance 29, a fifth of the
// green) is not, where ImageJ's unweighted RGB average (85 for both) would have found both.
newImage("colour", "RGB black", 200, 150, 1);
setColor(0, 255, 0);
fillRect(20, 20, 40, 40);
setColor(0, 0, 255);
fillRect(110, 60, 40, 40);
call("ij.IJ.runPlugIn", "unet.imagej.UNet_Segment", "model=@BASELINE@ provider=cpu memory=512 labels");
selectImage("colour-labels");
getStatistics(area, mean, min, max);
ok = max == 1 && getPixel(40, 40) > 0 && getPixel(130, 80) == 0;
check("RGB is segmented as its luminance: green square found, blue square not (" + max + " instance(s))", ok);
// A two-channel hyperstack: channel=1 segments the second channel's squares (the first holds a bright ramp); the
// labels keep the image's calibration. Without a channel the plugin refuses (the log says which to choose).
newImage("two", "16-bit black", 200, 150, 2, 1, 1);
Stack.setChannel(1);
for (x = 0; x < 200; x++) { setColor(x * 20); fillRect(x, 0, 1, 150); }
Stack.setChannel(2);
setColor(100);
fillRect(0, 0, 200, 150);
setColor(3000);
fillRect(20, 20, 40, 40);
fillRect(110, 60, 40, 40);
setVoxelSize(0.65, 0.65, 1, "micron");
call("ij.IJ.runPlugIn", "unet.imagej.UNet_Segment", "model=@BASELINE@ provider=cpu memory=512 labels channel=1");
selectImage("two-labels");
getStatistics(area, mean, min, max);
getPixelSize(unit, pw, ph);
ok = max == 2 && getPixel(40, 40) > 0 && getPixel(130, 80) > 0 && getPixel(5, 5) == 0 && pw == 0.65;
check("channel=1 of a 2-channel hyperstack: its 2 squares, calibration kept (" + max + ", " + pw + " " + unit + ")", ok);
close("two-labels");
selectImage("two");
call("ij.IJ.runPlugIn", "unet.imagej.UNet_Segment", "model=@BASELINE@ provider=cpu memory=512 labels");
ok = !isOpen("two-labels");
check("a hyperstack without a channel is refused (the log names the option)", ok);
// object_size: half the model's 30 px runs at scale 2 and the labels keep the image's size; -1 measures.
newImage("sized", "8-bit black", 200, 150, 1);
setColor(10);
fillRect(0, 0, 200, 150);
setColor(200);
fillRect(20, 20, 40, 40);
fillRect(110, 60, 40, 40);
call("ij.IJ.runPlugIn", "unet.imagej.UNet_Segment", "model=@BASELINE@ provider=cpu memory=512 labels object_size=15");
selectImage("sized-labels");
getStatistics(area, mean, min, max);
ok = getWidth() == 200 && getHeight() == 150 && max == 2 && Property.get("unet.scale") == "2.0";
check("object_size=15 segments at scale 2 on the image's grid (" + max + " instance(s), scale " + Property.get("unet.scale") + ")", ok);
close("sized-labels");
selectImage("sized");
call("ij.IJ.runPlugIn", "unet.imagej.UNet_Segment", "model=@BASELINE@ provider=cpu memory=512 labels object_size=-1");
selectImage("sized-labels");
ok = getWidth() == 200 && parseFloat(Property.get("unet.measured_object_size")) > 30;
check("object_size=-1 measures the squares (" + Property.get("unet.measured_object_size") + " px)", ok);
// The image's calibration is its pixel size: 0.325 µm pixels and a model trained at 0.65 µm run at half size.
selectImage("sized");
setVoxelSize(325, 325, 1, "nm");
close("sized-labels");
call("ij.IJ.runPlugIn", "unet.imagej.UNet_Segment", "model=@CALIBRATED@ provider=cpu memory=512 labels");
selectImage("sized-labels");
ok = getWidth() == 200 && Property.get("unet.scale") == "0.5";
check("a 325 nm calibration with a model trained at 0.65 µm runs at scale 0.5 (" + Property.get("unet.scale") + ")", ok);
// Errors reach the log with the library's message instead of crashing.
selectImage("cells");
call("ij.IJ.runPlugIn", "unet.imagej.UNet_Segment", "model=/nonexistent/model.onnx provider=cpu labels");
print("DONE");
