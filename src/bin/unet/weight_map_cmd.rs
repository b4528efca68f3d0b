//! `unet weight-map`: the paper's loss weight map and training target of a label image.

use super::*;

#[derive(clap::Args)]
pub struct WeightMapArgs {
    /// Instance labels (8/16/32-bit TIFF or PNG; 0 = background).
    pub labels: PathBuf,
    /// Weight map output (.tif: float32).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Training target output (.png/.tif: 0/255, touching cells split by a background line).
    #[arg(long)]
    pub target: Option<PathBuf>,
    /// Colour-mapped picture of the weights (PNG), like the paper's Fig. 3d.
    #[arg(long)]
    pub preview: Option<PathBuf>,
    #[arg(long, default_value_t = 10.0)]
    pub w0: f32,
    #[arg(long, default_value_t = 5.0)]
    pub sigma: f32,
    /// Class balance: none, inverse (class frequency), or BACKGROUND,FOREGROUND weights.
    #[arg(long, default_value = "inverse")]
    pub balance: String,
    /// Width of the background line separating touching cells in the target.
    #[arg(long, default_value_t = 2)]
    pub border_width: usize,
}

pub fn run(args: WeightMapArgs) -> unet::Result<()> {
    let WeightMapArgs { labels, output, target, preview, w0, sigma, balance, border_width } = args;
    use unet::weight_map::{ClassBalance, LabelView, WeightMapOptions, weight_map};
    if output.is_none() && target.is_none() && preview.is_none() {
        return Err(unet::Error::new(
            unet::UnetStatus::InvalidArgument,
            "nothing to write: give --output, --target and/or --preview",
        ));
    }
    let balance = match balance.as_str() {
        "none" => ClassBalance::None,
        "inverse" => ClassBalance::InverseFrequency,
        other => {
            let v: Vec<f32> = other.split(',').filter_map(|s| s.trim().parse().ok()).collect();
            match v.as_slice() {
                [background, foreground] => ClassBalance::Explicit { background: *background, foreground: *foreground },
                _ => {
                    return Err(unet::Error::new(
                        unet::UnetStatus::InvalidArgument,
                        format!("--balance '{other}': expected none, inverse or BACKGROUND,FOREGROUND"),
                    ));
                }
            }
        }
    };
    let started = Instant::now();
    let (l, w, h) = unet::imageio::read_labels(&labels)?;
    let mut weights = vec![0f32; w * h];
    let mut tgt = vec![0u8; w * h];
    let report = weight_map(
        &LabelView::packed_u32(&l, w, h)?,
        &WeightMapOptions { w0, sigma, balance, border_width },
        Some(&mut weights),
        Some(&mut tgt),
    )?;
    if let Some(path) = output {
        write_plane(&path, Plane::F32(&weights), w, h)?;
    }
    if let Some(path) = target {
        tgt.iter_mut().for_each(|v| *v = if *v != 0 { 255 } else { 0 });
        write_plane(&path, Plane::U8(&tgt), w, h)?;
    }
    if let Some(path) = preview {
        unet::imageio::write_preview(&path, &weights, w, h)?;
    }
    let max = weights.iter().cloned().fold(0.0f32, f32::max);
    eprintln!(
        "weight map of {} ({w}x{h}): {} cells, {} separation pixels, class weights {:.3}/{:.3}, max weight {max:.2}, {:.2} s",
        labels.display(),
        report.cells,
        report.separation_pixels,
        report.class_weights.0,
        report.class_weights.1,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
