//! Image files: the TIFF/PNG readers of the CLI (images and label images). Any bytes give an image whose buffer
//! holds exactly width x height x channels values, or an error with a message.
use std::path::Path;

use unet::imageio::PixelBuffer;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let name = Path::new("fuzz.tif");
        match unet::imageio::decode_image(data, name) {
            Ok(img) => {
                let len = match &img.pixels {
                    PixelBuffer::U8(v) => v.len(),
                    PixelBuffer::U16(v) => v.len(),
                    PixelBuffer::U32(v) => v.len(),
                    PixelBuffer::F32(v) => v.len(),
                };
                assert_eq!(len, img.width * img.height * img.channels, "{}x{}x{}", img.width, img.height, img.channels);
                img.view().expect("a decoded image is a valid view");
            }
            Err(e) => assert!(!e.message().is_empty()),
        }
        match unet::imageio::decode_labels(data, name) {
            Ok((labels, w, h)) => assert_eq!(labels.len(), w * h),
            Err(e) => assert!(!e.message().is_empty()),
        }
    });
}
