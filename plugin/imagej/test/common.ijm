// Shared by the headless and the menu test: a 2-frame 16-bit stack of bright squares.
function makeCells() {
    newImage("cells", "16-bit black", 200, 150, 2);
    setColor(3000);
    for (s = 1; s <= 2; s++) {
        setSlice(s);
        fillRect(20, 20, 40, 40);
        fillRect(100, 30, 30, 30);
        fillRect(60, 90, 45, 45);
        if (s == 2) fillRect(160, 100, 20, 20);
    }
}
function check(name, ok) {
    if (ok) print("PASS " + name); else print("FAIL " + name);
}
function checkSegmentation() {
    selectImage("cells-labels");
    ok = bitDepth() == 16;
    check("labels are 16-bit", ok);
    ok = nSlices == 2;
    check("labels have 2 frames", ok);
    setSlice(1);
    getStatistics(area, mean, min, max);
    ok = max == 3;
    check("frame 1: 3 instances (max label " + max + ")", ok);
    ok = getPixel(40, 40) > 0 && getPixel(5, 5) == 0;
    check("frame 1: square labelled, corner background", ok);
    setSlice(2);
    getStatistics(area, mean, min, max);
    ok = max == 4;
    check("frame 2: 4 instances (max label " + max + ")", ok);
    selectImage("cells-mask");
    ok = bitDepth() == 8 && getPixel(40, 40) == 255 && getPixel(5, 5) == 0;
    check("mask is 8-bit 0/255", ok);
}
function checkWeightMap() {
    newImage("gt", "16-bit black", 60, 40, 1);
    setColor(1);
    fillRect(5, 5, 25, 25);
    setColor(2);
    fillRect(30, 5, 25, 25);
}
function checkWeights() {
    selectImage("gt-weights");
    ok = bitDepth() == 32;
    check("weights are 32-bit", ok);
    getStatistics(area, mean, min, max);
    ok = getPixel(30, 15) == max && max > 5;
    check("separation line carries the largest weight (" + getPixel(30, 15) + " of " + max + ")", ok);
    selectImage("gt-target");
    ok = getPixel(29, 15) == 255 && getPixel(30, 15) == 0 && getPixel(31, 15) == 0 && getPixel(32, 15) == 255;
    check("target splits the touching cells", ok);
}
