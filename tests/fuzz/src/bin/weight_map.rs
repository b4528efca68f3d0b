//! `unet_weight_map` with arbitrary label images (size, dtype, stride, values) and options, through the C ABI.
//! Success must give finite weights >= the class weight floor and a 0/1 target; failure a status and a message.
use unet::ffi::{
    segment::UnetImage,
    weight_map::{UnetWeightMapOptions, UnetWeightMapOutputs, unet_weight_map, unet_weight_map_options_init},
};
use unet_fuzz::{Bytes, check_status, fill};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let mut b = Bytes::new(data);
        let (w, h) = (1 + b.u8() as usize % 48, 1 + b.u8() as usize % 48);
        let dtype = b.u8() as u32 % 6; // includes f32 (not labels) and unknown values
        let element = [1usize, 1, 2, 4, 4, 1][dtype as usize];
        let pad = (b.u8() % 4) as usize * element;
        let stride = w * element + pad;
        let mut options = UnetWeightMapOptions {
            struct_size: 0,
            w0: 0.0,
            sigma: 0.0,
            balance: 0,
            background_weight: 0.0,
            foreground_weight: 0.0,
            border_width: 0,
        };
        // SAFETY: a valid, writable options struct.
        unsafe { unet_weight_map_options_init(&mut options) };
        let flags = b.u8();
        if flags & 1 != 0 {
            options.w0 = b.f32();
        }
        if flags & 2 != 0 {
            options.sigma = b.f32();
        }
        if flags & 4 != 0 {
            options.balance = b.u8() as u32 % 4;
        }
        if flags & 8 != 0 {
            options.background_weight = b.f32();
            options.foreground_weight = b.f32();
        }
        if flags & 16 != 0 {
            options.border_width = b.u8() as u32 % 12;
        }
        let short = flags & 32 != 0;
        // Few distinct labels (touching cells) from the rest of the input.
        let pixels = fill(b.rest(), stride * h);
        let image = UnetImage {
            struct_size: size_of::<UnetImage>() as u32,
            dtype,
            data: pixels.as_ptr().cast(),
            width: w,
            height: h,
            channels: 1,
            row_stride_bytes: stride,
        };
        let n = w * h - usize::from(short);
        let (mut weights, mut target) = (vec![0f32; n], vec![0u8; n]);
        let mut out = UnetWeightMapOutputs {
            struct_size: size_of::<UnetWeightMapOutputs>() as u32,
            weights: weights.as_mut_ptr(),
            weights_len: n,
            target: target.as_mut_ptr(),
            target_len: n,
            cells: 0,
            separation_pixels: 0,
        };
        // SAFETY: every pointer is valid for the lengths given.
        let status = unsafe { unet_weight_map(&image, &options, &mut out) };
        check_status(status, "unet_weight_map");
        if status == unet::UnetStatus::Ok {
            assert!(!short, "a buffer one element short was accepted");
            assert!(weights.iter().all(|w| w.is_finite() && *w >= 0.0), "weights are finite and non-negative");
            assert!(target.iter().all(|&t| t <= 1));
            assert!(out.separation_pixels as usize <= n);
        }
    });
}
