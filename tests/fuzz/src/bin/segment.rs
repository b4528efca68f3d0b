//! `unet_segment` through the C ABI with arbitrary image geometry (size, channels, dtype, stride, pixel values)
//! and options (normalisation, threshold, connectivity, minimum size, instance method and its parameters, tile
//! size, tiles per run, a progress callback that cancels) on a tiny random network. Needs ONNX Runtime:
//! UNET_ORT_LIB. Success must give probabilities in [0, 1], a mask of 0/1 and labels numbered 1..label_count.
use std::{cell::Cell, ffi::c_void, ptr};

use unet::{
    Architecture, ModelMetadata, UNetWeights, UnetStatus,
    ffi::{
        model::{UnetModel, UnetModelOptions, unet_model_load_from_memory, unet_model_options_init},
        segment::{UnetImage, UnetOutputs, UnetSegmentOptions, unet_segment, unet_segment_options_init_sized},
    },
};
use unet_fuzz::{Bytes, check_status, fill};

thread_local! {
    /// Loaded on the first input of each fuzzing process (after AFL's fork), kept for the process's life.
    static MODEL: Cell<*mut UnetModel> = const { Cell::new(ptr::null_mut()) };
}

fn model() -> *const UnetModel {
    MODEL.with(|m| {
        if m.get().is_null() {
            let arch = Architecture { in_channels: 1, classes: 2, base_width: 2, depth: 1 };
            let bytes = unet::onnx::encode_unet(&UNetWeights::he_normal(arch, 1), &ModelMetadata::new(arch, "fuzz"))
                .expect("tiny model encodes");
            // SAFETY: all-zero is a valid bit pattern for the options struct, which init then fills.
            let mut options: UnetModelOptions = unsafe { std::mem::zeroed() };
            let mut out = ptr::null_mut();
            // SAFETY: valid pointers and lengths.
            unsafe {
                unet_model_options_init(&mut options);
                options.threads = 1;
                let status = unet_model_load_from_memory(bytes.as_ptr(), bytes.len(), &options, &mut out);
                assert_eq!(status, UnetStatus::Ok, "loading the tiny model (is UNET_ORT_LIB set?)");
            }
            m.set(out);
        }
        m.get().cast_const()
    })
}

/// Cancels once the count in `user_data` reaches zero.
unsafe extern "C" fn cancel_after(user_data: *mut c_void, _done: usize, _total: usize) -> i32 {
    // SAFETY: user_data points to the u32 budget below, alive for the call.
    let left = unsafe { &mut *user_data.cast::<u32>() };
    if *left == 0 {
        return 1;
    }
    *left -= 1;
    0
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let mut b = Bytes::new(data);
        let (w, h) = (1 + b.u8() as usize % 80, 1 + b.u8() as usize % 80);
        let geometry = b.u8();
        let channels = [1usize, 1, 3, 2][(geometry & 3) as usize];
        let dtype = u32::from((geometry >> 2) % 6); // 0 and 5 are not pixel types
        let element = [1usize, 1, 2, 4, 4, 1][dtype as usize];
        let pad = usize::from(geometry >> 5) * element;
        let stride = w * channels * element + pad;
        let mut o: UnetSegmentOptions = unsafe { std::mem::zeroed() };
        // SAFETY: o is a whole, writable options struct.
        unsafe { unet_segment_options_init_sized(&mut o, size_of::<UnetSegmentOptions>()) };
        let flags = b.u16();
        if flags & 1 != 0 {
            o.normalization = u32::from(b.u8() % 4);
        }
        if flags & 2 != 0 {
            o.percentile_low = b.f32();
            o.percentile_high = b.f32();
        }
        if flags & 4 != 0 {
            o.threshold = b.f32();
        }
        if flags & 8 != 0 {
            o.connectivity = [4, 8, 0, 6][usize::from(b.u8() % 4)];
        }
        if flags & 16 != 0 {
            o.min_size = u64::from(b.u16());
        }
        if flags & 32 != 0 {
            o.max_tile = u32::from(b.u8());
        }
        if flags & 64 != 0 {
            o.tiles_per_run = u32::from(b.u8() % 6);
        }
        if flags & 128 != 0 {
            o.memory_budget_bytes = u64::from(b.u32());
        }
        if flags & 256 != 0 {
            o.instances = u32::from(b.u8() % 4);
        }
        if flags & 512 != 0 {
            o.watershed_h = b.f32();
            o.watershed_smoothing = b.f32();
            // Since 0.3: seeds from the probabilities, and test-time augmentation.
            o.watershed_seed = b.f32();
            o.test_time_augmentation = u32::from(b.u8() % 2);
        }
        let mut budget = u32::from(b.u8() % 4);
        if flags & 1024 != 0 {
            o.progress = Some(cancel_after);
            o.progress_user_data = (&raw mut budget).cast();
        }
        let short = flags & 2048 != 0;
        let wanted = (flags >> 12) as u8 | 1; // which outputs: bit 0 probabilities, 1 mask, 2 labels
        let pixels = fill(b.rest(), stride * h + 8);
        // u16/u32/f32 pixels need their alignment: start at the first suitably aligned byte.
        let start = pixels.as_ptr().align_offset(element.max(1));
        let image = UnetImage {
            struct_size: size_of::<UnetImage>() as u32,
            dtype,
            data: pixels[start..].as_ptr().cast(),
            width: w,
            height: h,
            channels,
            row_stride_bytes: stride,
        };
        let n = w * h - usize::from(short);
        let (mut p, mut m, mut l) = (vec![0f32; n], vec![0u8; n], vec![0u32; n]);
        let mut out = UnetOutputs {
            struct_size: size_of::<UnetOutputs>() as u32,
            probabilities: if wanted & 1 != 0 { p.as_mut_ptr() } else { ptr::null_mut() },
            probabilities_len: n,
            mask: if wanted & 2 != 0 { m.as_mut_ptr() } else { ptr::null_mut() },
            mask_len: n,
            labels: if wanted & 4 != 0 { l.as_mut_ptr() } else { ptr::null_mut() },
            labels_len: n,
            label_count: 0,
        };
        // SAFETY: every pointer is valid for the sizes given; the image buffer has stride * h bytes after start.
        let status = unsafe { unet_segment(model(), &image, &o, &mut out) };
        check_status(status, "unet_segment");
        if status == UnetStatus::Ok {
            assert!(!short, "a buffer one element short was accepted");
            if wanted & 1 != 0 {
                assert!(p.iter().all(|v| (0.0..=1.0).contains(v)), "probabilities in [0, 1]");
            }
            if wanted & 2 != 0 {
                assert!(m.iter().all(|&v| v <= 1));
            }
            if wanted & 4 != 0 {
                let max = l.iter().copied().max().unwrap_or(0);
                assert_eq!(max, out.label_count, "labels are numbered 1..label_count");
                let mut seen = vec![false; max as usize + 1];
                l.iter().for_each(|&v| seen[v as usize] = true);
                assert!(seen[1..].iter().all(|&s| s), "no label number is skipped");
            }
        }
    });
}
