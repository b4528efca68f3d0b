import os
from pathlib import Path

# Artifacts (screenshots) go to the repository's out/ folder unless told otherwise.
ARTIFACTS = Path(os.environ.get("UNET_TEST_ARTIFACTS", Path(__file__).resolve().parents[3] / "out" / "test-artifacts"))

# The intensity baseline (written by `unet export-baseline`): its behaviour on bright squares is known, whereas the
# embedded default model changes whenever it is retrained.
BASELINE = os.environ["UNET_TEST_MODEL"]
# A random depth-4 U-Net (`unet init-model --base-width 2`): the full 92-px receptive field and 16-px pooling grid.
RANDOM_DEPTH4 = os.environ["UNET_TEST_RANDOM_MODEL"]
