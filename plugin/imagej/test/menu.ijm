// The real menu commands, as a recorded macro runs them (under a virtual display).
makeCells();
run("U-Net Segment", "model=[@BASELINE@] provider=cpu memory=512 min_size=0 labels mask");
checkSegmentation();
checkWeightMap();
run("U-Net Weight Map", "w0=10 sigma=5 balance=inverse border_width=2 target");
checkWeights();
// Every host gives the same labels (tested here, where ImageJ can open files): the CLI's watershed labels of a
// sample image with touching cells (written by scripts/test-imagej.sh, same model) equal the plugin's, pixel for pixel.
open("@SAMPLE@");
rename("sample");
run("U-Net Segment", "model=[@BASELINE@] provider=cpu instances=watershed memory=512 min_size=0 labels");
selectImage("sample-labels");
w = getWidth(); h = getHeight();
mine = newArray(w * h);
for (y = 0; y < h; y++) for (x = 0; x < w; x++) mine[y * w + x] = getPixel(x, y);
getStatistics(area, mean, min, maxMine);
open("@SAMPLE_LABELS@");
differ = 0;
for (y = 0; y < h; y++) for (x = 0; x < w; x++) if (getPixel(x, y) != mine[y * w + x]) differ++;
getStatistics(area, mean, min, maxCli);
ok = differ == 0 && maxMine == maxCli && maxCli > 1;
check("watershed labels equal the CLI labels (" + maxMine + " vs " + maxCli + " instances, " + differ + " pixels differ)", ok);
close("sample-labels");
selectImage("sample");
run("U-Net Segment", "model=[@BASELINE@] provider=cpu instances=components memory=512 min_size=0 labels");
selectImage("sample-labels");
getStatistics(area, mean, min, maxComponents);
ok = maxComponents < maxCli;
check("components give fewer instances than the watershed (" + maxComponents + " < " + maxCli + ")", ok);
// The watershed fields reach the library: a huge h leaves one seed per component, i.e. the components' count.
close("sample-labels");
selectImage("sample");
run("U-Net Segment", "model=[@BASELINE@] provider=cpu instances=watershed memory=512 min_size=0 labels watershed_h=100");
selectImage("sample-labels");
getStatistics(area, mean, min, maxHugeH);
ok = maxHugeH == maxComponents;
check("watershed_h=100 merges back to the components (" + maxHugeH + " == " + maxComponents + ")", ok);
// The embedded-model chooser: the default and the EM model by name give different masks of the same image.
selectImage("sample");
run("U-Net Segment", "embedded=default model=[] provider=cpu instances=components memory=512 min_size=0 mask");
selectImage("sample-mask");
rename("mask-default");
w = getWidth(); h = getHeight();
first = newArray(w * h);
for (y = 0; y < h; y++) for (x = 0; x < w; x++) first[y * w + x] = getPixel(x, y);
selectImage("sample");
run("U-Net Segment", "embedded=em model=[] provider=cpu instances=components memory=512 min_size=0 mask");
selectImage("sample-mask");
differ = 0;
for (y = 0; y < h; y++) for (x = 0; x < w; x++) if (getPixel(x, y) != first[y * w + x]) differ++;
ok = differ > w * h / 100;
check("the chooser's EM model gives another mask than the default (" + differ + " pixels differ)", ok);
// Test-time augmentation reaches the library: the default model's mask moves a little, not wholesale.
close("sample-mask");
selectImage("sample");
run("U-Net Segment", "embedded=default model=[] provider=cpu instances=components memory=512 min_size=0 mask tta");
selectImage("sample-mask");
differ = 0;
for (y = 0; y < h; y++) for (x = 0; x < w; x++) if (getPixel(x, y) != first[y * w + x]) differ++;
ok = differ > 0 && differ < w * h / 10;
check("tta changes the default's mask a little (" + differ + " pixels differ)", ok);
// The product as shipped: the embedded default with every choice left to its recommendation equals the CLI.
close("sample-labels");  // the watershed_h=100 result above: a window of the same title
selectImage("sample");
run("U-Net Segment", "embedded=default model=[] provider=cpu labels");
selectImage("sample-labels");
mine = newArray(w * h);
for (y = 0; y < h; y++) for (x = 0; x < w; x++) mine[y * w + x] = getPixel(x, y);
getStatistics(area, mean, min, maxMine);
open("@DEFAULT_LABELS@");
differ = 0;
for (y = 0; y < h; y++) for (x = 0; x < w; x++) if (getPixel(x, y) != mine[y * w + x]) differ++;
getStatistics(area, mean, min, maxCli);
ok = differ == 0 && maxMine == maxCli && maxCli > 1;
check("the default with its recommendation equals the CLI (" + maxMine + " vs " + maxCli + " instances, " + differ + " pixels differ)", ok);
print("DONE");
