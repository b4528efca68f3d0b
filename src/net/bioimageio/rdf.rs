//! What unet reads from a bioimage.io model description (`rdf.yaml`, format 0.4 or 0.5): the ONNX weights, the one
//! input and one output tensor (axes, sizes, halo, pre- and post-processing) and the facts for the provenance.
//! Everything unet cannot run is refused here, naming the field.

use yaml_rust2::{Yaml, YamlLoader};

use crate::error::{Error, Result, UnetStatus};

/// A tensor axis in the order the network sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    Batch,
    Channel,
    Y,
    X,
}

/// Size rule of the input's y and x axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputSize {
    Fixed(usize),
    Free { min: usize, step: usize },
}

/// One processing step, as the package names it.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Per-sample percentile scaling: (x - P_low) / (P_high - P_low).
    ScaleRange {
        low: f32,
        high: f32,
    },
    /// Per-sample (x - mean) / std.
    ZeroMeanUnitVariance,
    /// x * gain + offset, a value per channel or one for all.
    Affine {
        gain: Vec<f32>,
        offset: Vec<f32>,
    },
    Clip {
        min: Option<f32>,
        max: Option<f32>,
    },
    Sigmoid,
    Softmax,
    /// `ensure_dtype: float32` (unet computes in float32 anyway).
    Float32,
}

#[derive(Clone, Debug)]
pub struct TensorSpec {
    pub id: String,
    pub axes: Vec<Axis>,
    pub channels: usize,
    pub channel_names: Vec<String>,
    pub steps: Vec<Step>,
    /// Batch axis size when it is fixed.
    pub fixed_batch: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct Package {
    pub format_version: String,
    pub name: String,
    pub description: String,
    pub authors: Vec<String>,
    pub license: String,
    pub citations: Vec<String>,
    pub weights_source: String,
    pub weights_sha256: Option<String>,
    pub input: TensorSpec,
    pub input_size: InputSize,
    pub output: TensorSpec,
    /// Pixels the network itself removes on each side (valid convolutions; `size.offset` in the package).
    pub network_crop: usize,
    /// Pixels of the output to crop on each side (`halo`).
    pub halo: usize,
}

fn refuse(field: &str, why: impl std::fmt::Display) -> Error {
    Error::new(UnetStatus::ModelIncompatible, format!("bioimage.io package: {field}: {why}"))
}

fn number(y: &Yaml) -> Option<f64> {
    match y {
        Yaml::Integer(i) => Some(*i as f64),
        Yaml::Real(_) => y.as_f64(),
        _ => None,
    }
}

/// Sizes, steps, halos and offsets are at most this (the largest image side unet accepts): a description cannot
/// make the size arithmetic overflow.
const MAX_EXTENT: i64 = crate::image::MAX_DIMENSION as i64;

fn count(y: &Yaml, field: &str) -> Result<usize> {
    y.as_i64()
        .filter(|v| (0..=MAX_EXTENT).contains(v))
        .map(|v| v as usize)
        .ok_or_else(|| refuse(field, format!("expected an integer in 0..={MAX_EXTENT}")))
}

fn text(y: &Yaml) -> String {
    match y {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Real(r) => r.clone(),
        _ => String::new(),
    }
}

fn list(y: &Yaml) -> &[Yaml] {
    y.as_vec().map(Vec::as_slice).unwrap_or(&[])
}

/// Refuses YAML aliases (`*name`) before loading: the loader copies the anchored node for each one, so a few lines
/// of nested aliases ("billion laughs") would expand past any memory. Descriptions do not need them.
fn refuse_aliases(text: &str) -> Result<()> {
    use yaml_rust2::parser::{Event, Parser};
    let mut parser = Parser::new_from_str(text);
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => return Ok(()),
            Ok((Event::Alias(_), mark)) => {
                return Err(refuse(
                    "rdf.yaml",
                    format!("a YAML alias at line {} (unet reads descriptions without aliases)", mark.line()),
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(refuse("rdf.yaml", format!("not YAML: {e}"))),
        }
    }
}

/// Parses `rdf.yaml` (or `bioimageio.yaml`) text.
pub fn parse(text_of_rdf: &str) -> Result<Package> {
    refuse_aliases(text_of_rdf)?;
    let docs = YamlLoader::load_from_str(text_of_rdf).map_err(|e| refuse("rdf.yaml", format!("not YAML: {e}")))?;
    let doc = docs.first().ok_or_else(|| refuse("rdf.yaml", "empty"))?;
    let kind = text(&doc["type"]);
    if kind != "model" {
        return Err(refuse("type", format!("'{kind}' is not a model")));
    }
    let format_version = text(&doc["format_version"]);
    let v05 = match format_version.split('.').take(2).collect::<Vec<_>>().as_slice() {
        ["0", "5"] => true,
        ["0", "4"] => false,
        _ => return Err(refuse("format_version", format!("'{format_version}': unet reads formats 0.4 and 0.5"))),
    };
    let (inputs, outputs) = (list(&doc["inputs"]), list(&doc["outputs"]));
    if inputs.len() != 1 || outputs.len() != 1 {
        return Err(refuse(
            "inputs/outputs",
            format!("{} inputs and {} outputs; unet runs one image in, one map out", inputs.len(), outputs.len()),
        ));
    }
    let weights = &doc["weights"]["onnx"];
    if weights.is_badvalue() || weights.is_null() {
        let have: Vec<String> = doc["weights"].as_hash().map(|h| h.keys().map(text).collect()).unwrap_or_default();
        return Err(refuse(
            "weights",
            format!("no ONNX weights (this package has: {}); unet runs weights.onnx", have.join(", ")),
        ));
    }
    let weights_source = text(&weights["source"]);
    if weights_source.is_empty() {
        return Err(refuse("weights.onnx.source", "missing"));
    }
    let (input, input_size, output, network_crop, halo) =
        if v05 { tensors_v05(&inputs[0], &outputs[0])? } else { tensors_v04(&inputs[0], &outputs[0])? };
    let people =
        |y: &Yaml| list(y).iter().map(|a| if a.as_str().is_some() { text(a) } else { text(&a["name"]) }).collect();
    let citations = list(&doc["cite"])
        .iter()
        .map(|c| {
            let doi = text(&c["doi"]);
            if doi.is_empty() { text(&c["text"]) } else { format!("{} (doi {doi})", text(&c["text"])) }
        })
        .collect();
    Ok(Package {
        format_version,
        name: text(&doc["name"]),
        description: text(&doc["description"]),
        authors: people(&doc["authors"]),
        license: text(&doc["license"]),
        citations,
        weights_source,
        weights_sha256: Some(text(&weights["sha256"])).filter(|s| !s.is_empty()),
        input,
        input_size,
        output,
        network_crop,
        halo,
    })
}

type Tensors = (TensorSpec, InputSize, TensorSpec, usize, usize);

fn tensors_v05(input: &Yaml, output: &Yaml) -> Result<Tensors> {
    let in_id = text(&input["id"]);
    let mut axes_in = Vec::new();
    let (mut channels_in, mut names_in, mut fixed_batch_in) = (1, Vec::new(), None);
    let mut sizes: Vec<(String, InputSize)> = Vec::new();
    for (i, a) in list(&input["axes"]).iter().enumerate() {
        let field = format!("inputs[0].axes[{i}]");
        let kind = text(&a["type"]);
        let id = text(&a["id"]);
        match kind.as_str() {
            "batch" => {
                axes_in.push(Axis::Batch);
                fixed_batch_in = a["size"].as_i64().map(|n| n.clamp(1, MAX_EXTENT) as usize);
            }
            "channel" => {
                axes_in.push(Axis::Channel);
                (names_in, channels_in) = channel_names(a);
            }
            "space" if id == "y" || id == "x" => {
                axes_in.push(if id == "y" { Axis::Y } else { Axis::X });
                sizes.push(input_size_v05(&a["size"], id, &field)?);
            }
            "space" => return Err(refuse(&field, format!("space axis '{id}': unet runs 2-D images (y, x)"))),
            other => {
                return Err(refuse(&field, format!("axis type '{other}' is not supported (batch, channel, y, x)")));
            }
        }
    }
    let input_size = resolve_sizes(&sizes)?;
    let steps_in = steps_v05(list(&input["preprocessing"]), "inputs[0].preprocessing")?;
    check_dtype(&input["data"]["type"], "inputs[0].data.type")?;

    let mut axes_out = Vec::new();
    let (mut channels_out, mut names_out, mut crop, mut halo) = (1, Vec::new(), None::<usize>, 0usize);
    for (i, a) in list(&output["axes"]).iter().enumerate() {
        let field = format!("outputs[0].axes[{i}]");
        let id = text(&a["id"]);
        match text(&a["type"]).as_str() {
            "batch" => axes_out.push(Axis::Batch),
            "channel" => {
                axes_out.push(Axis::Channel);
                (names_out, channels_out) = channel_names(a);
            }
            "space" if id == "y" || id == "x" => {
                axes_out.push(if id == "y" { Axis::Y } else { Axis::X });
                let this_crop = output_crop_v05(a, &field, input_size)?;
                if crop.is_some_and(|c| c != this_crop) {
                    return Err(refuse(&field, "y and x must lose the same number of pixels"));
                }
                crop = Some(this_crop);
                let h = a["halo"].as_i64().unwrap_or(0).clamp(0, MAX_EXTENT) as usize;
                if h != halo && axes_out.iter().filter(|x| matches!(x, Axis::Y | Axis::X)).count() > 1 {
                    return Err(refuse(&format!("{field}.halo"), "y and x must have the same halo"));
                }
                halo = h;
            }
            other => return Err(refuse(&field, format!("axis type '{other}' (id '{id}') is not supported"))),
        }
    }
    let steps_out = steps_v05(list(&output["postprocessing"]), "outputs[0].postprocessing")?;
    let input = TensorSpec {
        id: in_id,
        axes: axes_in,
        channels: channels_in,
        channel_names: names_in,
        steps: steps_in,
        fixed_batch: fixed_batch_in,
    };
    let output = TensorSpec {
        id: text(&output["id"]),
        axes: axes_out,
        channels: channels_out,
        channel_names: names_out,
        steps: steps_out,
        fixed_batch: None,
    };
    check_axes(&input, "inputs[0].axes")?;
    check_axes(&output, "outputs[0].axes")?;
    Ok((input, input_size, output, crop.unwrap_or(0), halo))
}

/// A 0.5 input space axis's size rule as (axis id, rule): fixed, {min, step}, or ("ref:AXIS", placeholder) for
/// the same rule as another axis (resolved by `resolve_sizes`).
fn input_size_v05(size: &Yaml, id: String, field: &str) -> Result<(String, InputSize)> {
    if let Some(n) = size.as_i64() {
        Ok((id, InputSize::Fixed(count(&Yaml::Integer(n), field)?)))
    } else if !size["min"].is_badvalue() {
        let min = count(&size["min"], &format!("{field}.size.min"))?;
        Ok((id, InputSize::Free { min, step: count(&size["step"], &format!("{field}.size.step"))? }))
    } else if !size["axis_id"].is_badvalue() {
        Ok((format!("ref:{}", text(&size["axis_id"])), InputSize::Fixed(0)))
    } else {
        Err(refuse(&format!("{field}.size"), "expected an integer or {min, step}"))
    }
}

/// Pixels a 0.5 output space axis loses on each side against the input: from a fixed output size (with a fixed
/// input size) or from `size.offset` (0 or negative and even; the pixel size must be the input's).
fn output_crop_v05(axis: &Yaml, field: &str, input_size: InputSize) -> Result<usize> {
    let size = &axis["size"];
    if let Some(n) = size.as_i64() {
        return match input_size {
            InputSize::Fixed(i) if n >= 0 && (n as usize) <= i && (i - n as usize).is_multiple_of(2) => {
                Ok((i - n as usize) / 2)
            }
            _ => {
                Err(refuse(&format!("{field}.size"), "a fixed output size needs a fixed input size at least as large"))
            }
        };
    }
    let offset = size["offset"].as_i64().unwrap_or(0);
    if number(&axis["scale"]).unwrap_or(1.0) != 1.0 {
        return Err(refuse(&format!("{field}.scale"), "output and input must have the same pixel size"));
    }
    if offset > 0 || offset % 2 != 0 || offset < -2 * MAX_EXTENT {
        return Err(refuse(&format!("{field}.size.offset"), format!("{offset}: expected 0 or a negative even number")));
    }
    Ok((-offset / 2) as usize)
}

/// A 0.5 channel axis: its channel names and how many channels that makes.
fn channel_names(axis: &Yaml) -> (Vec<String>, usize) {
    let names: Vec<String> = list(&axis["channel_names"]).iter().map(text).collect();
    let n = names.len().max(1);
    (names, n)
}

fn resolve_sizes(sizes: &[(String, InputSize)]) -> Result<InputSize> {
    let direct: Vec<InputSize> = sizes.iter().filter(|(id, _)| !id.starts_with("ref:")).map(|(_, s)| *s).collect();
    match direct.as_slice() {
        [one] | [one, _] if direct.iter().all(|s| s == one) => Ok(*one),
        [_, _] => Err(refuse("inputs[0].axes", "y and x must follow the same size rule (unet tiles squares)")),
        _ => Err(refuse("inputs[0].axes", "expected space axes y and x with a size")),
    }
}

fn check_axes(t: &TensorSpec, field: &str) -> Result<()> {
    let has = |a: Axis| t.axes.iter().filter(|&&x| x == a).count();
    if has(Axis::Y) != 1 || has(Axis::X) != 1 || has(Axis::Batch) > 1 || has(Axis::Channel) > 1 {
        return Err(refuse(field, format!("{:?}: expected y and x once, batch and channel at most once", t.axes)));
    }
    Ok(())
}

fn check_dtype(y: &Yaml, field: &str) -> Result<()> {
    match y.as_str() {
        None | Some("float32") => Ok(()),
        Some(other) => Err(refuse(field, format!("'{other}': unet feeds float32"))),
    }
}

fn floats(y: &Yaml, field: &str) -> Result<Vec<f32>> {
    match y {
        Yaml::Array(v) => {
            v.iter().map(|x| number(x).map(|f| f as f32).ok_or_else(|| refuse(field, "not a number"))).collect()
        }
        Yaml::BadValue | Yaml::Null => Ok(Vec::new()),
        x => Ok(vec![number(x).ok_or_else(|| refuse(field, "not a number"))? as f32]),
    }
}

fn or_default(v: Vec<f32>, default: f32) -> Vec<f32> {
    if v.is_empty() { vec![default] } else { v }
}

/// Axes of a statistics step: per sample, never across channels (unet normalises each channel on its own).
fn check_stat_axes(axes: &Yaml, field: &str) -> Result<()> {
    let names: Vec<String> = match axes {
        Yaml::String(s) => s.chars().map(|c| c.to_string()).collect(),
        _ => list(axes).iter().map(text).collect(),
    };
    if names.iter().any(|a| a == "b" || a == "batch") {
        return Err(refuse(field, "statistics over the batch: unet normalises each image on its own"));
    }
    if names.iter().any(|a| a == "c" || a == "channel") {
        return Err(refuse(field, "statistics across channels: unet normalises each channel on its own"));
    }
    Ok(())
}

fn steps_v05(items: &[Yaml], field: &str) -> Result<Vec<Step>> {
    items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let f = format!("{field}[{i}]");
            let k = &s["kwargs"];
            Ok(match text(&s["id"]).as_str() {
                "scale_range" => {
                    check_stat_axes(&k["axes"], &format!("{f}.kwargs.axes"))?;
                    if !k["reference_tensor"].is_badvalue() && !k["reference_tensor"].is_null() {
                        return Err(refuse(&format!("{f}.kwargs.reference_tensor"), "percentiles of another tensor"));
                    }
                    Step::ScaleRange {
                        low: number(&k["min_percentile"]).unwrap_or(0.0) as f32,
                        high: number(&k["max_percentile"]).unwrap_or(100.0) as f32,
                    }
                }
                "zero_mean_unit_variance" => {
                    check_stat_axes(&k["axes"], &format!("{f}.kwargs.axes"))?;
                    Step::ZeroMeanUnitVariance
                }
                "fixed_zero_mean_unit_variance" => {
                    let (mean, std) = (floats(&k["mean"], &f)?, floats(&k["std"], &f)?);
                    affine_from_mean_std(mean, std, &f)?
                }
                "scale_linear" => scale_linear(k, &f)?,
                "clip" => clip(k),
                "sigmoid" => Step::Sigmoid,
                "softmax" => Step::Softmax,
                "ensure_dtype" if matches!(text(&k["dtype"]).as_str(), "float32" | "float64") => Step::Float32,
                other => return Err(refuse(&format!("{f}.id"), format!("'{other}' is not supported"))),
            })
        })
        .collect()
}

fn affine_from_mean_std(mean: Vec<f32>, std: Vec<f32>, field: &str) -> Result<Step> {
    if mean.is_empty()
        || mean.len() != std.len()
        || std.iter().any(|s| s.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater))
    {
        return Err(refuse(field, "mean and std must be given, as many of each, std > 0"));
    }
    Ok(Step::Affine {
        gain: std.iter().map(|s| 1.0 / s).collect(),
        offset: mean.iter().zip(&std).map(|(m, s)| -m / s).collect(),
    })
}

fn axes_v04(y: &Yaml, field: &str) -> Result<Vec<Axis>> {
    text(y)
        .chars()
        .map(|c| match c {
            'b' => Ok(Axis::Batch),
            'c' => Ok(Axis::Channel),
            'y' => Ok(Axis::Y),
            'x' => Ok(Axis::X),
            other => Err(refuse(field, format!("axis '{other}': unet runs 2-D images (axes from b, c, y, x)"))),
        })
        .collect()
}

fn tensors_v04(input: &Yaml, output: &Yaml) -> Result<Tensors> {
    let axes_in = axes_v04(&input["axes"], "inputs[0].axes")?;
    let at = |a: Axis, axes: &[Axis]| axes.iter().position(|&x| x == a);
    let (min, step) = input_shape_v04(&input["shape"], axes_in.len())?;
    let rule =
        |i: usize| if step[i] == 0 { InputSize::Fixed(min[i]) } else { InputSize::Free { min: min[i], step: step[i] } };
    let (yi, xi) = (at(Axis::Y, &axes_in), at(Axis::X, &axes_in));
    let (Some(yi), Some(xi)) = (yi, xi) else {
        return Err(refuse("inputs[0].axes", "expected y and x"));
    };
    if rule(yi) != rule(xi) {
        return Err(refuse("inputs[0].shape", "y and x must follow the same size rule (unet tiles squares)"));
    }
    let channels_in = at(Axis::Channel, &axes_in).map_or(1, |c| min[c].max(1));
    let fixed_batch = at(Axis::Batch, &axes_in).filter(|&b| step[b] == 0).map(|b| min[b].max(1));
    let steps_in = steps_v04(list(&input["preprocessing"]), "inputs[0].preprocessing")?;
    check_dtype(&input["data_type"], "inputs[0].data_type")?;

    let axes_out = axes_v04(&output["axes"], "outputs[0].axes")?;
    let out_shape = &output["shape"];
    let (yo, xo) = (at(Axis::Y, &axes_out), at(Axis::X, &axes_out));
    let (Some(yo), Some(xo)) = (yo, xo) else {
        return Err(refuse("outputs[0].axes", "expected y and x"));
    };
    let (crop, channels_out) = if let Some(fixed) = out_shape.as_vec() {
        let n = |i: usize| count(&fixed[i], "outputs[0].shape");
        let InputSize::Fixed(size_in) = rule(yi) else {
            return Err(refuse("outputs[0].shape", "a fixed output shape needs a fixed input shape"));
        };
        let out = n(yo)?;
        if out > size_in || (size_in - out) % 2 != 0 || n(xo)? != out {
            return Err(refuse("outputs[0].shape", "output y/x must equal the input's less an even margin"));
        }
        ((size_in - out) / 2, at(Axis::Channel, &axes_out).map_or(Ok(1), n)?)
    } else {
        let scale = floats(&out_shape["scale"], "outputs[0].shape.scale")?;
        let offset = floats(&out_shape["offset"], "outputs[0].shape.offset")?;
        if scale.len() != axes_out.len() || offset.len() != axes_out.len() {
            return Err(refuse("outputs[0].shape", "one scale and offset per axis expected"));
        }
        if scale[yo] != 1.0 || scale[xo] != 1.0 {
            return Err(refuse("outputs[0].shape.scale", "output and input must have the same pixel size"));
        }
        if offset[yo] != offset[xo] || offset[yo] > 0.0 || offset[yo].fract() != 0.0 || -offset[yo] > MAX_EXTENT as f32
        {
            return Err(refuse("outputs[0].shape.offset", "expected the same non-positive whole offset for y and x"));
        }
        // 0.4: output = input * scale + 2 * offset.
        let channels = at(Axis::Channel, &axes_out).map_or(1.0, |c| {
            let reference_channels = at(Axis::Channel, &axes_in).map_or(1.0, |ci| min[ci] as f32);
            reference_channels * scale[c] + 2.0 * offset[c]
        });
        ((-offset[yo]) as usize, channels.max(1.0) as usize)
    };
    let halo_list: Vec<usize> =
        list(&output["halo"]).iter().map(|v| count(v, "outputs[0].halo")).collect::<Result<_>>()?;
    let halo = if halo_list.is_empty() { 0 } else { halo_list.get(yo).copied().unwrap_or(0) };
    if !halo_list.is_empty() && halo_list.get(xo).copied().unwrap_or(0) != halo {
        return Err(refuse("outputs[0].halo", "y and x must have the same halo"));
    }
    let steps_out = steps_v04(list(&output["postprocessing"]), "outputs[0].postprocessing")?;
    let input = TensorSpec {
        id: text(&input["name"]),
        axes: axes_in,
        channels: channels_in,
        channel_names: Vec::new(),
        steps: steps_in,
        fixed_batch,
    };
    let output = TensorSpec {
        id: text(&output["name"]),
        axes: axes_out,
        channels: channels_out,
        channel_names: Vec::new(),
        steps: steps_out,
        fixed_batch: None,
    };
    check_axes(&input, "inputs[0].axes")?;
    check_axes(&output, "outputs[0].axes")?;
    Ok((input, rule(yi), output, crop, halo))
}

/// A 0.4 input shape as per-axis (minimum, step): a fixed shape has step 0.
fn input_shape_v04(shape: &Yaml, axes: usize) -> Result<(Vec<usize>, Vec<usize>)> {
    let counts = |v: &Yaml, field: &str| list(v).iter().map(|v| count(v, field)).collect::<Result<Vec<_>>>();
    let (min, step) = if shape.as_vec().is_some() {
        (counts(shape, "inputs[0].shape")?, vec![0; axes])
    } else {
        (counts(&shape["min"], "inputs[0].shape.min")?, counts(&shape["step"], "inputs[0].shape.step")?)
    };
    if min.len() != axes || step.len() != axes {
        return Err(refuse("inputs[0].shape", "one size per axis expected"));
    }
    Ok((min, step))
}

/// `scale_linear` (both formats): x * gain + offset, per channel or for all.
fn scale_linear(kwargs: &Yaml, field: &str) -> Result<Step> {
    Ok(Step::Affine {
        gain: or_default(floats(&kwargs["gain"], field)?, 1.0),
        offset: or_default(floats(&kwargs["offset"], field)?, 0.0),
    })
}

/// `clip` (both formats): either bound may be missing.
fn clip(kwargs: &Yaml) -> Step {
    Step::Clip { min: number(&kwargs["min"]).map(|v| v as f32), max: number(&kwargs["max"]).map(|v| v as f32) }
}

fn steps_v04(items: &[Yaml], field: &str) -> Result<Vec<Step>> {
    items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let f = format!("{field}[{i}]");
            let k = &s["kwargs"];
            let mode = text(&k["mode"]);
            let per_sample = |f: &str| -> Result<()> {
                match mode.as_str() {
                    "" | "per_sample" => check_stat_axes(&k["axes"], &format!("{f}.kwargs.axes")),
                    other => Err(refuse(
                        &format!("{f}.kwargs.mode"),
                        format!("'{other}': unet computes statistics per image"),
                    )),
                }
            };
            Ok(match text(&s["name"]).as_str() {
                "scale_range" => {
                    per_sample(&f)?;
                    if !k["reference_tensor"].is_badvalue() && !k["reference_tensor"].is_null() {
                        return Err(refuse(&format!("{f}.kwargs.reference_tensor"), "percentiles of another tensor"));
                    }
                    Step::ScaleRange {
                        low: number(&k["min_percentile"]).unwrap_or(0.0) as f32,
                        high: number(&k["max_percentile"]).unwrap_or(100.0) as f32,
                    }
                }
                "zero_mean_unit_variance" if mode == "fixed" => {
                    affine_from_mean_std(floats(&k["mean"], &f)?, floats(&k["std"], &f)?, &f)?
                }
                "zero_mean_unit_variance" => {
                    per_sample(&f)?;
                    Step::ZeroMeanUnitVariance
                }
                "scale_linear" => scale_linear(k, &f)?,
                "clip" => clip(k),
                "sigmoid" => Step::Sigmoid,
                other => return Err(refuse(&format!("{f}.name"), format!("'{other}' is not supported"))),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hostile_yaml_is_refused_without_blowing_up() {
        // Nested aliases: 10^12 scalars if expanded.
        let mut text = String::from("type: model\nformat_version: 0.5.4\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text += &format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n");
        }
        let e = super::parse(&text).unwrap_err();
        assert!(e.message().contains("alias"), "{e}");
        // Deep nesting: the YAML reader's recursion limit, an error and no stack overflow.
        let deep = format!("type: model\ninputs: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(super::parse(&deep).unwrap_err().message().contains("not YAML"));
        assert!(super::parse("type: model\nformat_version: [unclosed").is_err());
    }
}
