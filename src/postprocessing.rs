//! Post-processing recipes: how a foreground becomes instances (components or a watershed and its parameters), as a
//! model's metadata recommends it and a caller overrides it. The algorithms are in [`crate::instances`].

use crate::error::{Error, Result};

/// Parameters of the distance-transform watershed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Watershed {
    /// Minimum dynamic (height above the saddle, in pixels of distance) a maximum needs to seed its own instance.
    pub h: f32,
    /// Standard deviation (pixels) of the Gaussian that smooths the distance map first; 0 = none.
    pub smoothing: f32,
    /// `Some(p)`: the markers are the connected regions where P(foreground) >= p (marked [`SEED`] in the mask; `h`
    /// is not used); foreground without a seed becomes one instance per component. `None`: the distance maxima.
    pub seed: Option<f32>,
}

impl Watershed {
    pub const DEFAULT: Watershed = Watershed { h: 2.0, smoothing: 1.0, seed: None };

    pub fn validate(self) -> Result<()> {
        if !(self.h.is_finite() && (0.0..=1000.0).contains(&self.h)) {
            return Err(Error::invalid_argument(format!("watershed h {} is not in [0, 1000] pixels", self.h)));
        }
        if !(self.smoothing.is_finite() && (0.0..=50.0).contains(&self.smoothing)) {
            return Err(Error::invalid_argument(format!(
                "watershed smoothing {} is not in [0, 50] pixels",
                self.smoothing
            )));
        }
        if let Some(p) = self.seed
            && !(p.is_finite() && p > 0.0 && p <= 1.0)
        {
            return Err(Error::invalid_argument(format!("watershed seed probability {p} is not in (0, 1]")));
        }
        Ok(())
    }
}

/// How the foreground becomes instances.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InstanceMethod {
    /// Connected components of the foreground.
    Components,
    Watershed(Watershed),
}

/// How a caller asks for instances (CLI `--instances`, C `UnetInstances`, Python `instances=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceRequest {
    /// What the model recommends (its metadata), else connected components.
    Model,
    Components,
    Watershed,
}

/// Watershed settings a caller gave, each `None` where it left the choice to the model.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WatershedOverrides {
    pub h: Option<f32>,
    pub smoothing: Option<f32>,
    /// A probability in (0, 1]; 0 asks for the distance maxima.
    pub seed: Option<f32>,
}

impl WatershedOverrides {
    pub fn is_empty(&self) -> bool {
        *self == WatershedOverrides::default()
    }

    /// Each given field wins over `recommended`. An explicit h asks for the distance maxima (h is their
    /// parameter) unless a seed is given too.
    pub fn over(self, recommended: Watershed) -> Watershed {
        Watershed {
            h: self.h.unwrap_or(recommended.h),
            smoothing: self.smoothing.unwrap_or(recommended.smoothing),
            seed: match self.seed {
                None if self.h.is_some() => None,
                None => recommended.seed,
                Some(0.0) => None,
                Some(p) => Some(p),
            },
        }
    }
}

/// The one rule every host follows to turn a request and overrides into a method; `None` = the model's
/// recommendation unchanged. Overrides with `Model` adjust the model's watershed, and are an error when the model
/// does not recommend one (the caller would silently get something else); with `Components` they are an error
/// too (connected components have no h, smoothing or seed: the caller asked for two things at once).
pub fn resolve_instances(
    request: InstanceRequest,
    overrides: WatershedOverrides,
    recommended: Option<PostProcessing>,
) -> Result<Option<InstanceMethod>> {
    let recommended_watershed = match recommended.map(|p| p.method) {
        Some(InstanceMethod::Watershed(w)) => Some(w),
        _ => None,
    };
    let watershed = || {
        let w = overrides.over(recommended_watershed.unwrap_or(Watershed::DEFAULT));
        w.validate().map(|()| Some(InstanceMethod::Watershed(w)))
    };
    match request {
        InstanceRequest::Components if overrides.is_empty() => Ok(Some(InstanceMethod::Components)),
        InstanceRequest::Components => Err(Error::invalid_argument(
            "watershed h/smoothing/seed do not apply to connected components: drop them, or choose the watershed",
        )),
        InstanceRequest::Watershed => watershed(),
        InstanceRequest::Model if overrides.is_empty() => Ok(None),
        InstanceRequest::Model if recommended_watershed.is_some() => watershed(),
        InstanceRequest::Model => Err(Error::invalid_argument(
            "watershed h/smoothing/seed need the watershed instance method (this model does not recommend it)",
        )),
    }
}

/// A complete post-processing recipe: what a model recommends in its metadata (chosen on validation data).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PostProcessing {
    pub method: InstanceMethod,
    /// Foreground threshold on P(foreground); `None` = most probable class.
    pub threshold: Option<f32>,
    /// Instances smaller than this are removed.
    pub min_size: usize,
}

impl PostProcessing {
    /// Today's behaviour for models that recommend nothing.
    pub const PLAIN: PostProcessing =
        PostProcessing { method: InstanceMethod::Components, threshold: None, min_size: 0 };

    /// The metadata form, e.g. `watershed h=2 smoothing=1 threshold=0.5 min_size=20`.
    pub fn to_meta(&self) -> String {
        let mut s = match self.method {
            InstanceMethod::Components => "components".to_string(),
            InstanceMethod::Watershed(w) => match w.seed {
                None => format!("watershed h={} smoothing={}", w.h, w.smoothing),
                Some(p) => format!("watershed seed={p} smoothing={}", w.smoothing),
            },
        };
        if let Some(t) = self.threshold {
            s += &format!(" threshold={t}");
        }
        s + &format!(" min_size={}", self.min_size)
    }

    pub fn parse(s: &str) -> Result<PostProcessing> {
        let bad = |why: &str| Error::invalid_argument(format!("post-processing '{s}': {why}"));
        let mut words = s.split_whitespace();
        let mut method = match words.next() {
            Some("components") => InstanceMethod::Components,
            Some("watershed") => InstanceMethod::Watershed(Watershed::DEFAULT),
            _ => return Err(bad("expected 'components' or 'watershed' first")),
        };
        let mut pp = PostProcessing { method, threshold: None, min_size: 0 };
        for word in words {
            let (key, value) = word.split_once('=').ok_or_else(|| bad("expected key=value"))?;
            let num = || value.parse::<f32>().map_err(|_| bad(&format!("{key}={value} is not a number")));
            match (key, &mut method) {
                ("h", InstanceMethod::Watershed(w)) => w.h = num()?,
                ("smoothing", InstanceMethod::Watershed(w)) => w.smoothing = num()?,
                ("seed", InstanceMethod::Watershed(w)) => w.seed = Some(num()?),
                ("threshold", _) => pp.threshold = Some(num()?),
                ("min_size", _) => pp.min_size = value.parse().map_err(|_| bad("min_size is not a count"))?,
                _ => return Err(bad(&format!("unknown key '{key}'"))),
            }
        }
        pp.method = method;
        pp.validate().map_err(|e| bad(e.message()))?;
        Ok(pp)
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(t) = self.threshold
            && !(t.is_finite() && t > 0.0 && t <= 1.0)
        {
            return Err(Error::invalid_argument(format!("threshold {t} is not in (0, 1]")));
        }
        match self.method {
            InstanceMethod::Watershed(w) => w.validate(),
            InstanceMethod::Components => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_form_round_trips_and_rejects_nonsense() {
        for pp in [
            PostProcessing::PLAIN,
            PostProcessing {
                method: InstanceMethod::Watershed(Watershed { h: 1.5, smoothing: 0.0, seed: None }),
                threshold: Some(0.45),
                min_size: 25,
            },
            PostProcessing {
                method: InstanceMethod::Watershed(Watershed {
                    h: Watershed::DEFAULT.h,
                    smoothing: 2.0,
                    seed: Some(0.85),
                }),
                threshold: Some(0.4),
                min_size: 0,
            },
        ] {
            assert_eq!(PostProcessing::parse(&pp.to_meta()).unwrap(), pp);
        }
        for bad in [
            "",
            "blobs",
            "watershed h=x",
            "components h=2",
            "watershed h=-1",
            "components threshold=2",
            "watershed seed=0",
            "watershed seed=1.5",
            "watershed seed=NaN",
            "components seed=0.8",
        ] {
            assert!(PostProcessing::parse(bad).is_err(), "{bad}");
        }
    }
    #[test]
    fn one_rule_for_watershed_overrides() {
        let recommended = PostProcessing {
            method: InstanceMethod::Watershed(Watershed { h: 3.0, smoothing: 0.5, seed: Some(0.8) }),
            threshold: Some(0.4),
            min_size: 0,
        };
        let resolve = |request, o: WatershedOverrides, rec| resolve_instances(request, o, rec).unwrap();
        let ws = |h, smoothing, seed| Some(InstanceMethod::Watershed(Watershed { h, smoothing, seed }));
        let none = WatershedOverrides::default();
        // Nothing given: the model's choice as is; asking for the watershed gets the model's parameters.
        assert_eq!(resolve(InstanceRequest::Model, none, Some(recommended)), None);
        assert_eq!(resolve(InstanceRequest::Watershed, none, Some(recommended)), ws(3.0, 0.5, Some(0.8)));
        assert_eq!(resolve(InstanceRequest::Watershed, none, None), ws(2.0, 1.0, None));
        // Field by field; an explicit h means distance maxima unless a seed is given too; seed 0 = maxima.
        let h = WatershedOverrides { h: Some(5.0), ..none };
        assert_eq!(resolve(InstanceRequest::Model, h, Some(recommended)), ws(5.0, 0.5, None));
        let h_seed = WatershedOverrides { h: Some(5.0), seed: Some(0.6), ..none };
        assert_eq!(resolve(InstanceRequest::Watershed, h_seed, Some(recommended)), ws(5.0, 0.5, Some(0.6)));
        let maxima = WatershedOverrides { seed: Some(0.0), ..none };
        assert_eq!(resolve(InstanceRequest::Watershed, maxima, Some(recommended)), ws(3.0, 0.5, None));
        let smooth = WatershedOverrides { smoothing: Some(0.0), ..none };
        assert_eq!(resolve(InstanceRequest::Model, smooth, Some(recommended)), ws(3.0, 0.0, Some(0.8)));
        // Components takes none (an error, not silently ignored); overrides on a model without a watershed, or
        // invalid values, are errors.
        assert_eq!(resolve(InstanceRequest::Components, none, Some(recommended)), Some(InstanceMethod::Components));
        let e = resolve_instances(InstanceRequest::Components, h, Some(recommended)).unwrap_err();
        assert!(e.to_string().contains("connected components"), "{e}");
        assert!(resolve_instances(InstanceRequest::Model, h, None).is_err());
        assert!(resolve_instances(InstanceRequest::Model, h, Some(PostProcessing::PLAIN)).is_err());
        let nan = WatershedOverrides { seed: Some(f32::NAN), ..none };
        assert!(resolve_instances(InstanceRequest::Watershed, nan, None).is_err());
    }
}
