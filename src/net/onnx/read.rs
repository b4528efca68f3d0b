//! Reading a unet model back: weights and metadata from an ONNX file that unet's writer made, so a model can be
//! fine-tuned (`unet train --init`) or given new metadata (`unet eval --tune --write`) without losing anything.

use prost::Message;

use super::{
    Precision,
    proto::{ModelProto, data_type},
};
use crate::{
    error::{Error, Result, UnetStatus},
    metadata::ModelMetadata,
    weights::{Tensor, UNetWeights, parameter_layout},
};

/// Weights and metadata of a unet ONNX model, checked against the architecture its metadata names. Float16
/// weights (`unet convert --fp16`) are widened to float32 exactly.
pub fn read_unet(bytes: &[u8]) -> Result<(UNetWeights, ModelMetadata)> {
    read_unet_with_precision(bytes).map(|(w, m, _)| (w, m))
}

/// Like [`read_unet`], also saying in which precision the weights are stored.
pub fn read_unet_with_precision(bytes: &[u8]) -> Result<(UNetWeights, ModelMetadata, Precision)> {
    let invalid = |msg: String| Error::new(UnetStatus::ModelInvalid, msg);
    let model = ModelProto::decode(bytes).map_err(|e| invalid(format!("not an ONNX model: {e}")))?;
    let metadata =
        ModelMetadata::from_lookup(|k| model.metadata_props.iter().find(|p| p.key == k).map(|p| p.value.clone()))?;
    let graph = model.graph.as_ref().ok_or_else(|| invalid("the ONNX model has no graph".into()))?;
    let mut tensors = Vec::new();
    let mut precision = None;
    for (name, kind) in parameter_layout(&metadata.arch) {
        let t =
            graph.initializer.iter().find(|t| t.name == name).ok_or_else(|| {
                invalid(format!("the model lacks the weight '{name}' of a {:?} U-Net", metadata.arch))
            })?;
        let shape = kind.shape();
        let dims: Vec<usize> = t.dims.iter().map(|&d| usize::try_from(d).unwrap_or(usize::MAX)).collect();
        let n: usize = shape.iter().product();
        let (this, bytes_per) = match t.data_type {
            data_type::FLOAT => (Precision::F32, 4),
            data_type::FLOAT16 => (Precision::F16, 2),
            _ => (Precision::F32, 0),
        };
        if dims != shape || bytes_per == 0 || t.raw_data.len() != bytes_per * n || precision.is_some_and(|p| p != this)
        {
            return Err(invalid(format!(
                "weight '{name}' is {dims:?} (type {}, {} bytes); the architecture needs {shape:?} in float32 or \
                 float16, all weights alike",
                t.data_type,
                t.raw_data.len()
            )));
        }
        precision = Some(this);
        let data = match this {
            Precision::F32 => {
                t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
            }
            Precision::F16 => {
                t.raw_data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
            }
        };
        tensors.push(Tensor { name, shape, data });
    }
    Ok((UNetWeights { arch: metadata.arch, tensors }, metadata, precision.unwrap_or_default()))
}

/// Reads a model file, or an embedded model by name ("default", "em") when no such file exists.
pub fn read_unet_file(path_or_name: &str) -> Result<(UNetWeights, ModelMetadata)> {
    let bytes = crate::net::model_files::model_file_bytes(path_or_name)?;
    read_unet(&bytes).map_err(|e| e.context(path_or_name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Architecture;

    #[test]
    fn written_weights_and_metadata_read_back_identically() {
        let arch = Architecture { in_channels: 2, classes: 3, base_width: 4, depth: 2 };
        let weights = UNetWeights::he_normal(arch, 5);
        let mut meta = ModelMetadata::new(arch, "round trip");
        meta.postprocessing =
            Some(crate::postprocessing::PostProcessing::parse("watershed h=1 smoothing=0 min_size=3").unwrap());
        let bytes = super::super::encode_unet(&weights, &meta).unwrap();
        let (w, m) = read_unet(&bytes).unwrap();
        assert_eq!((w, m), (weights.clone(), meta.clone()));
        // Bytes that are not a unet model are refused with a message.
        assert_eq!(read_unet(b"not onnx").unwrap_err().status(), UnetStatus::ModelInvalid);
        let other = ModelMetadata::new(Architecture { base_width: 8, ..arch }, "x");
        let mut model = ModelProto::decode(bytes.as_slice()).unwrap();
        model.metadata_props.retain(|p| p.key != "unet.base_width");
        model.metadata_props.push(super::super::proto::StringStringEntryProto {
            key: "unet.base_width".into(),
            value: other.arch.base_width.to_string(),
        });
        let err = read_unet(&model.encode_to_vec()).unwrap_err();
        assert!(err.message().contains("enc0.conv1.weight"), "{err}");
    }
}
