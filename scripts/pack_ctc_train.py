"""Copies the training frames of Cell Tracking Challenge datasets: sequence 01 without its last FRACTION (the frames
`unet train/eval --val-fraction/--held-out` hold out), with their silver truth. Used by scripts/gpu-check.sh to
send training data to a GPU machine.

Usage: pack_ctc_train.py SRC DST FRACTION [--limit N] [--every K]   (K: every K-th frame; neighbours in a
time-lapse are nearly the same picture)
"""
import glob
import os
import shutil
import sys


def main():
    src, dst, fraction = sys.argv[1], sys.argv[2], float(sys.argv[3])
    limit = int(sys.argv[sys.argv.index("--limit") + 1]) if "--limit" in sys.argv else None
    every = int(sys.argv[sys.argv.index("--every") + 1]) if "--every" in sys.argv else 1
    for ds in sorted(os.listdir(src)):
        frames = sorted(glob.glob(os.path.join(src, ds, "01", "t*.tif")))
        if not frames:
            continue
        # The same rounding as dataset::load_ctc.
        first_val = int(len(frames) * (1 - fraction) + 0.5)
        os.makedirs(os.path.join(dst, ds, "01"), exist_ok=True)
        os.makedirs(os.path.join(dst, ds, "01_ST", "SEG"), exist_ok=True)
        kept = 0
        for f in frames[:first_val][::every][:limit]:
            num = int(os.path.basename(f)[1:-4])
            st = os.path.join(src, ds, "01_ST", "SEG", f"man_seg{num:03d}.tif")
            if os.path.exists(st):
                shutil.copy(f, os.path.join(dst, ds, "01"))
                shutil.copy(st, os.path.join(dst, ds, "01_ST", "SEG"))
                kept += 1
        print(f"{ds}: {kept} of {len(frames)} frames (held out from frame {first_val})")


if __name__ == "__main__":
    main()
