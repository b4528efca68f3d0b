// The real menu commands, as a recorded macro runs them (under a virtual display).
makeCells();
run("U-Net Segment", "model=[@BASELINE@] provider=cpu memory=512 min_size=0 labels mask");
checkSegmentation();
checkWeightMap();
run("U-Net Weight Map", "w0=10 sigma=5 balance=inverse border_width=2 target");
checkWeights();
print("DONE");
