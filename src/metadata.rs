//! What a model file says about itself (ONNX `metadata_props`), so every host gets identical results from the
//! file alone: architecture, size rules, normalisation, class names and provenance.

use crate::{
    error::{Error, Result, UnetStatus},
    geometry::{Architecture, Geometry},
    postprocessing::PostProcessing,
};

/// Version of the metadata convention below; bumped when a key changes meaning.
pub const FORMAT_VERSION: u32 = 1;

/// Input normalisation the model was trained with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Normalization {
    /// Pixels are used as they are (as f32).
    None,
    /// Per channel: (x - P_low) / (P_high - P_low), percentiles of the whole image (CSBDeep/StarDist style).
    Percentile { low: f32, high: f32 },
    /// Per channel: (x - mean) / (std + 1e-6) over the whole image (bioimage.io's `zero_mean_unit_variance`).
    MeanStd,
}

impl Normalization {
    pub const DEFAULT: Normalization = Normalization::Percentile { low: 1.0, high: 99.8 };

    pub fn to_meta(self) -> String {
        match self {
            Normalization::None => "none".into(),
            Normalization::MeanStd => "meanstd".into(),
            Normalization::Percentile { low, high } => format!("percentile:{low}:{high}"),
        }
    }

    pub fn parse(s: &str) -> Option<Normalization> {
        match s {
            "none" => return Some(Normalization::None),
            "meanstd" => return Some(Normalization::MeanStd),
            _ => {}
        }
        let mut parts = s.strip_prefix("percentile:")?.split(':');
        let low: f32 = parts.next()?.parse().ok()?;
        let high: f32 = parts.next()?.parse().ok()?;
        let n = Normalization::Percentile { low, high };
        (parts.next().is_none() && n.validate().is_ok()).then_some(n)
    }

    pub fn validate(self) -> Result<()> {
        if let Normalization::Percentile { low, high } = self
            && !(low.is_finite() && high.is_finite() && 0.0 <= low && low < high && high <= 100.0)
        {
            return Err(Error::invalid_argument(format!(
                "percentiles must satisfy 0 <= low < high <= 100, got {low} and {high}"
            )));
        }
        Ok(())
    }
}

/// Everything the plugin needs to know about a model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelMetadata {
    pub arch: Architecture,
    pub normalization: Normalization,
    pub class_names: Vec<String>,
    /// Free text: how the weights were made (training data, command, epochs, scores).
    pub provenance: String,
    /// Post-processing chosen on validation data (instance method, threshold, minimum size); `None` = connected
    /// components of the most probable class, as for every model before this key existed.
    pub postprocessing: Option<PostProcessing>,
    /// Set for a network unet did not write (a bioimage.io package wrapped to unet's input/output convention):
    /// then `arch` gives only channels and classes, and the sizes come from here.
    pub imported: Option<ImportedNetwork>,
    /// The typical object diameter of the training data in pixels (the median over its instances of
    /// 2 sqrt(area / pi)), measured by the trainer: the scale the `object_size` option resamples images to.
    /// `None` for models written before this key; they count as [`DEFAULT_OBJECT_SIZE`].
    pub object_size: Option<f32>,
    /// Micrometres per pixel of the training images, when they were all taken at one: an image whose own pixel
    /// size is known is then resampled by the ratio (unless an object size is given). `None` = not recorded.
    pub pixel_size: Option<f32>,
}

/// The object diameter (pixels) assumed for a model that does not record its own (Cellpose's convention, 30 px).
pub const DEFAULT_OBJECT_SIZE: f32 = 30.0;

/// The size rules of an imported network, as its package declares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportedNetwork {
    pub sizes: Geometry,
    /// Most tiles one run may hold (a network exported for batch 1, or without a batch axis).
    pub max_batch: Option<usize>,
}

/// Stand-in base width for an imported network's memory estimate (its width is unknown).
pub const IMPORTED_BASE_WIDTH: usize = 32;

mod key {
    pub const FORMAT: &str = "unet.format_version";
    pub const ARCHITECTURE: &str = "unet.architecture";
    pub const IN_CHANNELS: &str = "unet.in_channels";
    pub const CLASSES: &str = "unet.classes";
    pub const BASE_WIDTH: &str = "unet.base_width";
    pub const DEPTH: &str = "unet.depth";
    pub const HALO: &str = "unet.halo";
    pub const SIZE_RULE: &str = "unet.valid_input_size";
    pub const NORMALIZATION: &str = "unet.normalization";
    pub const CLASS_NAMES: &str = "unet.class_names";
    pub const PROVENANCE: &str = "unet.provenance";
    pub const POSTPROCESSING: &str = "unet.postprocessing";
    pub const INPUT_SIZES: &str = "unet.input_sizes";
    pub const MAX_BATCH: &str = "unet.max_batch";
    pub const OBJECT_SIZE: &str = "unet.object_size";
    pub const PIXEL_SIZE: &str = "unet.pixel_size_um";
}

impl ModelMetadata {
    pub fn new(arch: Architecture, provenance: impl Into<String>) -> Self {
        let class_names = if arch.classes == 2 {
            vec!["background".into(), "foreground".into()]
        } else {
            (0..arch.classes).map(|i| if i == 0 { "background".into() } else { format!("class{i}") }).collect()
        };
        ModelMetadata {
            arch,
            normalization: Normalization::DEFAULT,
            class_names,
            provenance: provenance.into(),
            postprocessing: None,
            imported: None,
            object_size: None,
            pixel_size: None,
        }
    }

    /// The object diameter (pixels) this model segments best: its recorded one, else [`DEFAULT_OBJECT_SIZE`].
    pub fn object_size_or_default(&self) -> f32 {
        self.object_size.unwrap_or(DEFAULT_OBJECT_SIZE)
    }

    /// Key/value pairs for the ONNX file.
    pub fn to_props(&self) -> Vec<(String, String)> {
        let g = self.geometry();
        let architecture = if self.imported.is_some() { "imported" } else { "unet2015" };
        let pairs: [(&str, String); 11] = [
            (key::FORMAT, FORMAT_VERSION.to_string()),
            (key::ARCHITECTURE, architecture.into()),
            (key::IN_CHANNELS, self.arch.in_channels.to_string()),
            (key::CLASSES, self.arch.classes.to_string()),
            (key::BASE_WIDTH, self.arch.base_width.to_string()),
            (key::DEPTH, self.arch.depth.to_string()),
            (key::HALO, g.halo.to_string()),
            (key::SIZE_RULE, format!("{}k+{} (at least {})", g.size_step, g.size_offset, g.min_input)),
            (key::NORMALIZATION, self.normalization.to_meta()),
            (key::CLASS_NAMES, self.class_names.join(",")),
            (key::PROVENANCE, self.provenance.clone()),
        ];
        let mut props: Vec<(String, String)> = pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        if let Some(pp) = &self.postprocessing {
            props.push((key::POSTPROCESSING.to_string(), pp.to_meta()));
        }
        if let Some(size) = self.object_size {
            props.push((key::OBJECT_SIZE.to_string(), format!("{size}")));
        }
        if let Some(size) = self.pixel_size {
            props.push((key::PIXEL_SIZE.to_string(), format!("{size}")));
        }
        if let Some(imported) = &self.imported {
            let fixed = if g.fixed { " fixed" } else { "" };
            props.push((key::INPUT_SIZES.to_string(), format!("min={} step={}{fixed}", g.min_input, g.size_step)));
            if let Some(n) = imported.max_batch {
                props.push((key::MAX_BATCH.to_string(), n.to_string()));
            }
        }
        props
    }

    /// Reads the metadata back through a lookup (ONNX Runtime's custom metadata map). Checks consistency: the
    /// stored halo must match the architecture, so a file edited by hand cannot make tiles misalign.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let incompatible = |msg: String| Error::new(UnetStatus::ModelIncompatible, msg);
        let get = |k: &str| {
            lookup(k).ok_or_else(|| {
                incompatible(format!(
                    "model metadata lacks '{k}': export the model with unet's ONNX writer (unet train --export)"
                ))
            })
        };
        let num = |k: &str, range: std::ops::RangeInclusive<usize>| -> Result<usize> {
            let v = get(k)?;
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| incompatible(format!("model metadata '{k}' = '{v}' is not in {range:?}")))
        };
        let format = num(key::FORMAT, 1..=u32::MAX as usize)?;
        if format > FORMAT_VERSION as usize {
            return Err(incompatible(format!(
                "model metadata format {format} is newer than this library understands ({FORMAT_VERSION}); upgrade unet"
            )));
        }
        let architecture = get(key::ARCHITECTURE)?;
        if architecture != "unet2015" && architecture != "imported" {
            return Err(incompatible(format!(
                "unknown architecture '{architecture}' (expected 'unet2015' or 'imported')"
            )));
        }
        let imported = architecture == "imported";
        let arch = Architecture {
            in_channels: num(key::IN_CHANNELS, 1..=64)?,
            classes: num(key::CLASSES, 2..=255)?,
            base_width: num(key::BASE_WIDTH, if imported { 0..=4096 } else { 1..=4096 })?,
            depth: num(key::DEPTH, if imported { 0..=8 } else { 1..=8 })?,
        };
        let halo = num(key::HALO, 0..=100_000)?;
        let imported = match imported {
            false => None,
            true => Some(ImportedNetwork {
                sizes: parse_input_sizes(&get(key::INPUT_SIZES)?, halo)
                    .ok_or_else(|| incompatible(format!("model metadata '{}' is not understood", key::INPUT_SIZES)))?,
                max_batch: lookup(key::MAX_BATCH).map(|_| num(key::MAX_BATCH, 1..=4096)).transpose()?,
            }),
        };
        if imported.is_none() && halo != arch.geometry().halo {
            return Err(incompatible(format!(
                "model metadata halo {halo} does not match a depth-{} U-Net (halo {})",
                arch.depth,
                arch.geometry().halo
            )));
        }
        let normalization = match lookup(key::NORMALIZATION) {
            None => Normalization::DEFAULT,
            Some(s) => Normalization::parse(&s)
                .ok_or_else(|| incompatible(format!("model metadata normalisation '{s}' is not understood")))?,
        };
        let class_names: Vec<String> = match lookup(key::CLASS_NAMES) {
            Some(s) => s.split(',').map(str::to_string).collect(),
            None => ModelMetadata::new(arch, "").class_names,
        };
        if class_names.len() != arch.classes {
            return Err(incompatible(format!(
                "model metadata names {} classes but the architecture has {}",
                class_names.len(),
                arch.classes
            )));
        }
        let postprocessing = lookup(key::POSTPROCESSING)
            .map(|s| PostProcessing::parse(&s).map_err(|e| incompatible(format!("model metadata: {}", e.message()))))
            .transpose()?;
        let object_size = lookup(key::OBJECT_SIZE)
            .map(|s| {
                s.trim().parse::<f32>().ok().filter(|d| valid_object_size(*d)).ok_or_else(|| {
                    incompatible(format!("model metadata '{}' = '{s}' is not a diameter in pixels", key::OBJECT_SIZE))
                })
            })
            .transpose()?;
        let pixel_size = lookup(key::PIXEL_SIZE)
            .map(|s| {
                s.trim().parse::<f32>().ok().filter(|d| valid_pixel_size(*d)).ok_or_else(|| {
                    incompatible(format!("model metadata '{}' = '{s}' is not a pixel size in µm", key::PIXEL_SIZE))
                })
            })
            .transpose()?;
        Ok(ModelMetadata {
            arch,
            normalization,
            class_names,
            provenance: lookup(key::PROVENANCE).unwrap_or_default(),
            postprocessing,
            imported,
            object_size,
            pixel_size,
        })
    }

    pub fn geometry(&self) -> Geometry {
        match &self.imported {
            Some(imported) => imported.sizes,
            None => self.arch.geometry(),
        }
    }

    /// Base width for the memory estimate of a tile.
    pub fn base_width_for_memory(&self) -> usize {
        if self.imported.is_some() { IMPORTED_BASE_WIDTH } else { self.arch.base_width }
    }
}

/// An object diameter a model may record or a caller may give: finite, 1 to 10 000 pixels.
pub fn valid_object_size(d: f32) -> bool {
    d.is_finite() && (1.0..=10_000.0).contains(&d)
}

/// A pixel size (micrometres per pixel) a model may record or an image carry: finite, above 0, at most 1 m.
pub fn valid_pixel_size(um: f32) -> bool {
    um.is_finite() && um > 0.0 && um <= 1e6
}

/// `min=96 step=8` or `min=96 step=8 fixed` (see [`ModelMetadata::to_props`]).
fn parse_input_sizes(s: &str, halo: usize) -> Option<Geometry> {
    let mut words = s.split_whitespace();
    let min: usize = words.next()?.strip_prefix("min=")?.parse().ok()?;
    let step: usize = words.next()?.strip_prefix("step=")?.parse().ok()?;
    let fixed = match words.next() {
        None => false,
        Some("fixed") => true,
        Some(_) => return None,
    };
    if words.next().is_some() || min > 1 << 20 || step > 1 << 20 {
        return None;
    }
    Geometry::declared(min, step, halo, fixed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn round_trip_and_rejections() {
        let mut meta = ModelMetadata::new(Architecture::PAPER, "test");
        let map: HashMap<String, String> = meta.to_props().into_iter().collect();
        assert_eq!(ModelMetadata::from_lookup(|k| map.get(k).cloned()).unwrap(), meta);
        meta.postprocessing =
            Some(PostProcessing::parse("watershed h=3 smoothing=0.5 threshold=0.6 min_size=9").unwrap());
        let with_pp: HashMap<String, String> = meta.to_props().into_iter().collect();
        assert_eq!(ModelMetadata::from_lookup(|k| with_pp.get(k).cloned()).unwrap(), meta);
        meta.object_size = Some(17.25);
        meta.pixel_size = Some(0.65);
        let sized: HashMap<String, String> = meta.to_props().into_iter().collect();
        assert_eq!(ModelMetadata::from_lookup(|k| sized.get(k).cloned()).unwrap(), meta);
        for bad in ["0", "-3", "nan", "inf", "big"] {
            let mut m = sized.clone();
            m.insert("unet.object_size".into(), bad.into());
            assert!(ModelMetadata::from_lookup(|k| m.get(k).cloned()).is_err(), "{bad}");
        }
        let mut bad_pp = with_pp.clone();
        bad_pp.insert("unet.postprocessing".into(), "watershed h=-3".into());
        let err = ModelMetadata::from_lookup(|k| bad_pp.get(k).cloned()).unwrap_err();
        assert_eq!(err.status(), UnetStatus::ModelIncompatible);

        let mut bad = map.clone();
        bad.insert("unet.halo".into(), "91".into());
        let err = ModelMetadata::from_lookup(|k| bad.get(k).cloned()).unwrap_err();
        assert_eq!(err.status(), UnetStatus::ModelIncompatible);
        assert!(err.message().contains("halo"), "{err}");

        let err = ModelMetadata::from_lookup(|_| None).unwrap_err();
        assert!(err.message().contains("unet.format_version"), "{err}");
    }

    #[test]
    fn imported_networks_keep_their_sizes() {
        let mut meta = ModelMetadata::new(Architecture { in_channels: 3, classes: 2, base_width: 0, depth: 0 }, "x");
        meta.imported =
            Some(ImportedNetwork { sizes: Geometry::declared(96, 8, 16, true).unwrap(), max_batch: Some(1) });
        let map: HashMap<String, String> = meta.to_props().into_iter().collect();
        let back = ModelMetadata::from_lookup(|k| map.get(k).cloned()).unwrap();
        assert_eq!(back, meta);
        assert_eq!(back.geometry().output_for_input(96), Some(64));
        let mut free = meta.clone();
        free.imported = Some(ImportedNetwork { sizes: Geometry::declared(64, 16, 0, false).unwrap(), max_batch: None });
        let map: HashMap<String, String> = free.to_props().into_iter().collect();
        assert_eq!(ModelMetadata::from_lookup(|k| map.get(k).cloned()).unwrap(), free);
        let mut bad = map.clone();
        bad.insert("unet.input_sizes".into(), "min=8 step=16".into());
        bad.insert("unet.halo".into(), "4".into());
        assert!(ModelMetadata::from_lookup(|k| bad.get(k).cloned()).is_err(), "no output pixel left");
    }

    #[test]
    fn normalisation_strings() {
        assert_eq!(Normalization::parse("percentile:1:99.8"), Some(Normalization::DEFAULT));
        assert_eq!(Normalization::parse("none"), Some(Normalization::None));
        assert_eq!(Normalization::parse("meanstd"), Some(Normalization::MeanStd));
        assert_eq!(Normalization::parse("percentile:50:10"), None);
        assert_eq!(Normalization::parse("zscore"), None);
    }
}
