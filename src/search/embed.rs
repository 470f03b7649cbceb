//! Static (model2vec-style) token embeddings: distilling a sentence-transformers BERT into one
//! vector per vocabulary token (offline, once), loading such a table (ours or a published
//! model2vec model), and embedding text at run time as the weighted mean of its tokens' rows.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Instant;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use super::wordpiece::WordPiece;

/// The row index that marks a token as not embedded (special, unknown or with a zero row).
const SKIP: u32 = u32::MAX;

/// Sequences encoded per matrix product during distillation: large enough to amortize
/// packing the weights, small enough that a thread's buffers stay a few MB.
const BATCH: usize = 128;

/// A static embedding model: a WordPiece tokenizer and one vector per token.
#[derive(Debug)]
pub struct StaticModel {
    tokenizer: WordPiece,
    dim: usize,
    /// Row-major [rows, dim]; f16 halves the memory of f32 at a precision (about 3 decimal
    /// digits) far finer than what separates tools in a ranking.
    rows: Vec<f16>,
    /// Token id → row of `rows`, or `SKIP`.
    row_of: Vec<u32>,
    /// Per-token weights stored with the model (newer model2vec files), multiplied into
    /// every caller weight.
    weights: Option<Vec<f32>>,
}

/// What a distillation did.
#[derive(Debug, Clone)]
pub struct DistillReport {
    /// Rows of the written matrix (the tokenizer's vocabulary size).
    pub vocab_size: usize,
    /// Length of each vector.
    pub dim: usize,
    /// Tokens run through the encoder.
    pub embedded: usize,
    /// Tokens given a zero vector (`[unusedN]`, padding, ids without a token).
    pub skipped: usize,
    /// Threads the encoder ran on.
    pub threads: usize,
    /// Length of the vocabulary's mean vector, subtracted from every row (0 to 1: the larger,
    /// the more the pooled vectors had in common).
    pub mean_norm: f32,
    /// Wall-clock seconds, loading and writing included.
    pub seconds: f64,
    /// The directory written.
    pub out_dir: PathBuf,
}

impl StaticModel {
    /// Loads a model2vec-format directory: `tokenizer.json` (WordPiece) and
    /// `model.safetensors` with `embeddings` [rows, dim] (f32, f16, bf16, f64 or int8) and,
    /// optionally, `weights` [vocab] and `mapping` [vocab] (token → row).
    pub fn load(dir: &Path) -> Result<StaticModel, String> {
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = read_tokenizer(&tokenizer_path)?;
        let file = dir.join("model.safetensors");
        let at = |reason: String| format!("{}: {reason}", file.display());
        let bytes = std::fs::read(&file).map_err(|e| at(e.to_string()))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| at(format!("not a safetensors file: {e}")))?;
        // sentence-transformers' StaticEmbedding saves the same matrix as `embedding.weight`.
        let (name, embeddings) = ["embeddings", "embedding.weight"]
            .iter()
            .find_map(|&n| st.tensor(n).ok().map(|t| (n, t)))
            .ok_or_else(|| {
                at(format!(
                    "no tensor \"embeddings\" (it has: {})",
                    st.names().join(", ")
                ))
            })?;
        let &[n_rows, dim] = embeddings.shape() else {
            return Err(at(format!(
                "tensor \"{name}\" has shape {:?}, expected [rows, dim]",
                embeddings.shape()
            )));
        };
        if n_rows == 0 || dim == 0 {
            return Err(at(format!("tensor \"{name}\" is empty: [{n_rows}, {dim}]")));
        }
        let mut rows = Vec::with_capacity(n_rows * dim);
        for_each_f32(&embeddings, |x| rows.push(f16::from_f32(x)))
            .map_err(|dt| at(format!("tensor \"{name}\" has unsupported dtype {dt:?}")))?;
        if let Some(i) = rows.iter().position(|x| !x.is_finite()) {
            return Err(at(format!(
                "tensor \"{name}\" has a value at row {} that is not finite or past f16's range (±65504)",
                i / dim
            )));
        }

        let vocab = tokenizer.vocab_size();
        let mut row_of: Vec<u32> = match st.tensor("mapping") {
            Ok(mapping) => {
                per_token_shape(&mapping, vocab)
                    .map_err(|shape| at(format!("tensor \"mapping\" has shape {shape:?}, but tokenizer.json has {vocab} tokens")))?;
                let mut row_of = Vec::with_capacity(vocab);
                let mut bad = None;
                for_each_index(&mapping, |row| match usize::try_from(row) {
                    Ok(r) if r < n_rows => row_of.push(r as u32),
                    _ => {
                        bad.get_or_insert(row);
                        row_of.push(SKIP);
                    }
                })
                .map_err(|dt| {
                    at(format!(
                        "tensor \"mapping\" has dtype {dt:?}, expected an integer type"
                    ))
                })?;
                if let Some(row) = bad {
                    return Err(at(format!(
                        "tensor \"mapping\" maps a token to row {row}, but \"{name}\" has {n_rows} rows"
                    )));
                }
                row_of
            }
            Err(_) if n_rows == vocab => (0..vocab as u32).collect(),
            Err(_) => {
                return Err(at(format!(
                    "vocabulary size mismatch: tokenizer.json has {vocab} tokens but \"{name}\" has {n_rows} rows (and there is no \"mapping\")"
                )));
            }
        };
        let weights = match st.tensor("weights") {
            Ok(w) => {
                per_token_shape(&w, vocab).map_err(|shape| {
                    at(format!(
                        "tensor \"weights\" has shape {shape:?}, but tokenizer.json has {vocab} tokens"
                    ))
                })?;
                let mut weights = Vec::with_capacity(vocab);
                for_each_f32(&w, |x| weights.push(x))
                    .map_err(|dt| at(format!("tensor \"weights\" has unsupported dtype {dt:?}")))?;
                Some(weights)
            }
            Err(_) => None,
        };

        let special = tokenizer.special_ids();
        for id in [special.cls, special.sep, special.pad, Some(special.unk)]
            .into_iter()
            .flatten()
        {
            if let Some(r) = row_of.get_mut(id as usize) {
                *r = SKIP;
            }
        }
        for r in &mut row_of {
            if *r != SKIP {
                let row = &rows[*r as usize * dim..][..dim];
                // Both signed zeros: the bits without the sign are all zero.
                if row.iter().all(|x| x.to_bits() & 0x7FFF == 0) {
                    *r = SKIP;
                }
            }
        }
        Ok(StaticModel {
            tokenizer,
            dim,
            rows,
            row_of,
            weights,
        })
    }

    /// Length of each embedding.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of token ids the tokenizer can produce.
    pub fn vocab_size(&self) -> usize {
        self.row_of.len()
    }

    /// Heap bytes held: the f16 matrix, the token → row table, weights and tokenizer.
    pub fn memory_bytes(&self) -> usize {
        self.rows.capacity() * 2
            + self.row_of.capacity() * 4
            + self.weights.as_ref().map_or(0, |w| w.capacity() * 4)
            + self.tokenizer.memory_bytes()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &WordPiece {
        &self.tokenizer
    }

    /// Appends the word-piece ids of `text` to `ids`.
    pub fn tokenize(&self, text: &str, ids: &mut Vec<u32>) {
        self.tokenizer.encode_into(text, ids);
    }

    /// Whether `id` has a vector (it is not special, unknown or a zero row).
    pub fn is_embedded(&self, id: u32) -> bool {
        self.row_of.get(id as usize).is_some_and(|&r| r != SKIP)
    }

    /// Adds `weight` times the vector of token `id` (times its stored weight, if any) to
    /// `out`; does nothing for a token without a vector. Panics if `out.len() != dim()`.
    pub fn accumulate(&self, id: u32, weight: f32, out: &mut [f32]) {
        assert_eq!(out.len(), self.dim, "output length is not the model's dim");
        let Some(&row) = self.row_of.get(id as usize).filter(|&&r| r != SKIP) else {
            return;
        };
        let weight = match &self.weights {
            Some(w) => weight * w[id as usize],
            None => weight,
        };
        if weight == 0.0 || !weight.is_finite() {
            return;
        }
        let src = &self.rows[row as usize * self.dim..][..self.dim];
        // Converting through a stack buffer lets `half` use F16C on whole chunks.
        let mut buf = [0.0f32; 64];
        for (s, o) in src.chunks(64).zip(out.chunks_mut(64)) {
            let b = &mut buf[..s.len()];
            s.convert_to_f32_slice(b);
            for (o, x) in o.iter_mut().zip(b.iter()) {
                *o += weight * x;
            }
        }
    }

    /// Writes into `out` the L2-normalized weighted mean of the vectors of `ids` (`weight`
    /// gives each occurrence's weight); tokens without a vector are skipped, and `out` is all
    /// zeros when no token has one. Allocates nothing. Panics if `out.len() != dim()`.
    pub fn embed_weighted(&self, ids: &[u32], weight: impl Fn(u32) -> f32, out: &mut [f32]) {
        out.fill(0.0);
        for &id in ids {
            if self.is_embedded(id) {
                self.accumulate(id, weight(id), out);
            }
        }
        normalize(out);
    }
}

/// Distills the sentence-transformers BERT in `model_dir` (`config.json`,
/// `model.safetensors`, `tokenizer.json`) into a model2vec-format directory at `out_dir`:
/// each vocabulary token is encoded as `[CLS] token [SEP]`, its last hidden state mean-pooled
/// over the three positions and L2-normalized; the vocabulary's mean is then subtracted from
/// every row (see `center`) and the rows normalized again, and the matrix written as f16
/// `embeddings`.
pub fn distill(model_dir: &Path, out_dir: &Path) -> Result<DistillReport, String> {
    let started = Instant::now();
    let tokenizer_path = model_dir.join("tokenizer.json");
    let tokenizer = read_tokenizer(&tokenizer_path)?;
    let config_path = model_dir.join("config.json");
    let config = BertConfig::read(&config_path)?;
    let weights_path = model_dir.join("model.safetensors");
    let bert = Bert::read(&weights_path, &config)?;

    let vocab = tokenizer.vocab_size();
    if vocab > config.vocab_size {
        return Err(format!(
            "{}: vocabulary size mismatch: tokenizer.json has {vocab} tokens, the model's word embeddings {} rows",
            model_dir.display(),
            config.vocab_size
        ));
    }
    let special = tokenizer.special_ids();
    let (Some(cls), Some(sep)) = (special.cls, special.sep) else {
        return Err(format!(
            "{}: the vocabulary lacks [CLS] or [SEP], which every encoded token is wrapped in",
            tokenizer_path.display()
        ));
    };
    let todo: Vec<u32> = (0..vocab as u32)
        .filter(|&id| {
            Some(id) != special.pad
                && tokenizer
                    .id_to_token(id)
                    .is_some_and(|t| !is_unused_token(t))
        })
        .collect();

    let threads = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .clamp(1, todo.len().max(1));
    let mut vectors = encode_tokens(&bert, &todo, cls, sep, threads)?;
    let dim = config.hidden;
    let mean_norm = center(&mut vectors, dim);

    let mut matrix = vec![f16::ZERO; vocab * dim];
    for (&id, v) in todo.iter().zip(vectors.chunks_exact(dim)) {
        matrix[id as usize * dim..][..dim].convert_from_f32_slice(v);
    }
    write_model2vec(out_dir, &matrix, vocab, dim, &tokenizer_path)?;
    Ok(DistillReport {
        vocab_size: vocab,
        dim,
        embedded: todo.len(),
        skipped: vocab - todo.len(),
        threads,
        mean_norm,
        seconds: started.elapsed().as_secs_f64(),
        out_dir: out_dir.to_path_buf(),
    })
}

/// Subtracts the mean of the unit rows of `vectors` from each and normalizes them again;
/// returns the mean's length. Two of the three pooled positions are `[CLS]` and `[SEP]`, so
/// every token's vector shares one large direction (about half its length for MiniLM) that
/// would make any two texts look alike; model2vec's PCA removes it the same way, by centering.
fn center(vectors: &mut [f32], dim: usize) -> f32 {
    let rows = vectors.len() / dim;
    if rows == 0 {
        return 0.0;
    }
    let mut mean = vec![0.0f64; dim];
    for row in vectors.chunks_exact(dim) {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += f64::from(x);
        }
    }
    let mean: Vec<f32> = mean.iter().map(|m| (m / rows as f64) as f32).collect();
    for row in vectors.chunks_exact_mut(dim) {
        axpy(row, -1.0, &mean);
        normalize(row);
    }
    mean.iter().map(|m| m * m).sum::<f32>().sqrt()
}

/// `[unused0]`...: placeholder rows BERT never trained, so their vectors are noise.
fn is_unused_token(token: &str) -> bool {
    token
        .strip_prefix("[unused")
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn read_tokenizer(path: &Path) -> Result<WordPiece, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    WordPiece::from_tokenizer_json(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_model2vec(
    out_dir: &Path,
    matrix: &[f16],
    vocab: usize,
    dim: usize,
    tokenizer_path: &Path,
) -> Result<(), String> {
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let bytes: Vec<u8> = matrix.iter().flat_map(|x| x.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F16, vec![vocab, dim], &bytes)
        .map_err(|e| format!("the embeddings tensor: {e}"))?;
    let model_path = out_dir.join("model.safetensors");
    // Serialized in memory and written plainly: `serialize_to_file` goes through a temporary
    // file, which leaves the model readable by its owner alone.
    let file = safetensors::serialize([("embeddings", view)], None)
        .map_err(|e| format!("{}: {e}", model_path.display()))?;
    std::fs::write(&model_path, file).map_err(|e| format!("{}: {e}", model_path.display()))?;
    let tokenizer_out = out_dir.join("tokenizer.json");
    std::fs::copy(tokenizer_path, &tokenizer_out).map_err(|e| {
        format!(
            "copying {} to {}: {e}",
            tokenizer_path.display(),
            tokenizer_out.display()
        )
    })?;
    let config = serde_json::json!({
        "model_type": "model2vec",
        "hidden_dim": dim,
        "normalize": true,
        "source": "sentence-transformers/all-MiniLM-L6-v2 distilled by toolgate",
    });
    let config_path = out_dir.join("config.json");
    let text = serde_json::to_string_pretty(&config).map_err(|e| e.to_string())? + "\n";
    std::fs::write(&config_path, text).map_err(|e| format!("{}: {e}", config_path.display()))
}

/// Scales `v` to unit length, unless it is zero.
fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        let inv = 1.0 / norm;
        v.iter_mut().for_each(|x| *x *= inv);
    }
}

/// `Ok` when a per-token tensor is [vocab] or [vocab, 1]; else its shape.
fn per_token_shape(t: &TensorView, vocab: usize) -> Result<(), Vec<usize>> {
    match t.shape() {
        [n] | [n, 1] if *n == vocab => Ok(()),
        shape => Err(shape.to_vec()),
    }
}

/// Calls `f` with every element of a float (or int8: model2vec's scaled quantization) tensor.
fn for_each_f32(t: &TensorView, mut f: impl FnMut(f32)) -> Result<(), Dtype> {
    let b = t.data();
    match t.dtype() {
        Dtype::F32 => b
            .chunks_exact(4)
            .for_each(|c| f(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        Dtype::F16 => b
            .chunks_exact(2)
            .for_each(|c| f(f16::from_le_bytes([c[0], c[1]]).to_f32())),
        Dtype::BF16 => b
            .chunks_exact(2)
            .for_each(|c| f(bf16::from_le_bytes([c[0], c[1]]).to_f32())),
        Dtype::F64 => b.chunks_exact(8).for_each(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            f(f64::from_le_bytes(a) as f32)
        }),
        Dtype::I8 => b.iter().for_each(|&x| f(x as i8 as f32)),
        other => return Err(other),
    }
    Ok(())
}

/// Calls `f` with every element of an integer tensor.
fn for_each_index(t: &TensorView, mut f: impl FnMut(i64)) -> Result<(), Dtype> {
    let b = t.data();
    match t.dtype() {
        Dtype::I64 | Dtype::U64 => b.chunks_exact(8).for_each(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            f(i64::from_le_bytes(a))
        }),
        Dtype::I32 => b
            .chunks_exact(4)
            .for_each(|c| f(i32::from_le_bytes([c[0], c[1], c[2], c[3]]).into())),
        Dtype::U32 => b
            .chunks_exact(4)
            .for_each(|c| f(u32::from_le_bytes([c[0], c[1], c[2], c[3]]).into())),
        Dtype::I16 => b
            .chunks_exact(2)
            .for_each(|c| f(i16::from_le_bytes([c[0], c[1]]).into())),
        Dtype::U16 => b
            .chunks_exact(2)
            .for_each(|c| f(u16::from_le_bytes([c[0], c[1]]).into())),
        other => return Err(other),
    }
    Ok(())
}

/// The hyper-parameters of a BERT encoder (`config.json`).
#[derive(Debug, Clone)]
struct BertConfig {
    vocab_size: usize,
    hidden: usize,
    layers: usize,
    heads: usize,
    intermediate: usize,
    max_positions: usize,
    type_vocab: usize,
    eps: f32,
}

impl BertConfig {
    fn read(path: &Path) -> Result<BertConfig, String> {
        let at = |reason: String| format!("{}: {reason}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| at(e.to_string()))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| at(format!("not valid JSON: {e}")))?;
        let string = |key: &str| v.get(key).and_then(Value::as_str);
        if let Some(kind) = string("model_type").filter(|&k| k != "bert") {
            return Err(at(format!(
                "model_type is \"{kind}\"; only \"bert\" is supported"
            )));
        }
        if let Some(act) = string("hidden_act").filter(|&a| a != "gelu") {
            return Err(at(format!(
                "hidden_act is \"{act}\"; only \"gelu\" (exact, erf) is supported"
            )));
        }
        if let Some(kind) = string("position_embedding_type").filter(|&k| k != "absolute") {
            return Err(at(format!(
                "position_embedding_type is \"{kind}\"; only \"absolute\" is supported"
            )));
        }
        let size = |key: &str| -> Result<usize, String> {
            v.get(key)
                .and_then(Value::as_u64)
                .filter(|&n| n > 0)
                .map(|n| n as usize)
                .ok_or_else(|| at(format!("\"{key}\" is missing or not a positive integer")))
        };
        let config = BertConfig {
            vocab_size: size("vocab_size")?,
            hidden: size("hidden_size")?,
            layers: size("num_hidden_layers")?,
            heads: size("num_attention_heads")?,
            intermediate: size("intermediate_size")?,
            max_positions: size("max_position_embeddings")?,
            type_vocab: size("type_vocab_size")?,
            eps: match v.get("layer_norm_eps") {
                None => 1e-12,
                Some(e) => e.as_f64().filter(|e| *e > 0.0).ok_or_else(|| {
                    at(format!("\"layer_norm_eps\" is {e}, not a positive number"))
                })? as f32,
            },
        };
        if !config.hidden.is_multiple_of(config.heads) {
            return Err(at(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden, config.heads
            )));
        }
        Ok(config)
    }
}

#[derive(Debug)]
struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// One transformer block's weights; each linear layer is [out, in] as in PyTorch.
#[derive(Debug)]
struct Layer {
    /// Query, key and value stacked into one [3·hidden, hidden] product.
    qkv_w: Vec<f32>,
    qkv_b: Vec<f32>,
    attn_out_w: Vec<f32>,
    attn_out_b: Vec<f32>,
    attn_norm: LayerNorm,
    inter_w: Vec<f32>,
    inter_b: Vec<f32>,
    out_w: Vec<f32>,
    out_b: Vec<f32>,
    out_norm: LayerNorm,
}

/// A BERT encoder in f32.
#[derive(Debug)]
struct Bert {
    config: BertConfig,
    word: Vec<f32>,
    position: Vec<f32>,
    /// Token type 0's row: every sequence here is a single segment.
    token_type: Vec<f32>,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
}

/// One thread's activations, reused from batch to batch.
#[derive(Debug, Default)]
struct Scratch {
    hidden: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    projected: Vec<f32>,
    inter: Vec<f32>,
    scores: Vec<f32>,
}

impl Bert {
    fn read(path: &Path, config: &BertConfig) -> Result<Bert, String> {
        let at = |reason: String| format!("{}: {reason}", path.display());
        let bytes = std::fs::read(path).map_err(|e| at(e.to_string()))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| at(format!("not a safetensors file: {e}")))?;
        // BertModel checkpoints name tensors from `embeddings.`; BertFor* ones from `bert.`.
        let prefix = if st.tensor("embeddings.word_embeddings.weight").is_ok() {
            ""
        } else if st.tensor("bert.embeddings.word_embeddings.weight").is_ok() {
            "bert."
        } else {
            return Err(at(
                "no tensor \"embeddings.word_embeddings.weight\" (nor with a \"bert.\" prefix): not a BERT checkpoint"
                    .into(),
            ));
        };
        let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
            let full = format!("{prefix}{name}");
            let t = st
                .tensor(&full)
                .map_err(|_| at(format!("no tensor \"{full}\"")))?;
            if t.shape() != shape {
                return Err(at(format!(
                    "tensor \"{full}\" has shape {:?}, expected {shape:?} (from config.json)",
                    t.shape()
                )));
            }
            let mut v = Vec::with_capacity(shape.iter().product());
            for_each_f32(&t, |x| v.push(x)).map_err(|dt| {
                at(format!(
                    "tensor \"{full}\" has dtype {dt:?}, expected F32, F16 or BF16"
                ))
            })?;
            Ok(v)
        };
        let norm = |name: &str, n: usize| -> Result<LayerNorm, String> {
            Ok(LayerNorm {
                gamma: tensor(&format!("{name}.weight"), &[n])?,
                beta: tensor(&format!("{name}.bias"), &[n])?,
            })
        };
        let (h, i) = (config.hidden, config.intermediate);
        let mut layers = Vec::with_capacity(config.layers);
        for l in 0..config.layers {
            let p = format!("encoder.layer.{l}");
            let mut qkv_w = Vec::with_capacity(3 * h * h);
            let mut qkv_b = Vec::with_capacity(3 * h);
            for part in ["query", "key", "value"] {
                qkv_w.extend(tensor(
                    &format!("{p}.attention.self.{part}.weight"),
                    &[h, h],
                )?);
                qkv_b.extend(tensor(&format!("{p}.attention.self.{part}.bias"), &[h])?);
            }
            layers.push(Layer {
                qkv_w,
                qkv_b,
                attn_out_w: tensor(&format!("{p}.attention.output.dense.weight"), &[h, h])?,
                attn_out_b: tensor(&format!("{p}.attention.output.dense.bias"), &[h])?,
                attn_norm: norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                inter_w: tensor(&format!("{p}.intermediate.dense.weight"), &[i, h])?,
                inter_b: tensor(&format!("{p}.intermediate.dense.bias"), &[i])?,
                out_w: tensor(&format!("{p}.output.dense.weight"), &[h, i])?,
                out_b: tensor(&format!("{p}.output.dense.bias"), &[h])?,
                out_norm: norm(&format!("{p}.output.LayerNorm"), h)?,
            });
        }
        let mut token_type = tensor(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab, h],
        )?;
        token_type.truncate(h);
        Ok(Bert {
            word: tensor("embeddings.word_embeddings.weight", &[config.vocab_size, h])?,
            position: tensor(
                "embeddings.position_embeddings.weight",
                &[config.max_positions, h],
            )?,
            token_type,
            embed_norm: norm("embeddings.LayerNorm", h)?,
            layers,
            config: config.clone(),
        })
    }

    /// The last hidden state of `ids.len() / len` sequences of `len` tokens each, every
    /// position attended (no padding), row-major [ids.len(), hidden].
    fn forward<'s>(&self, ids: &[u32], len: usize, s: &'s mut Scratch) -> &'s [f32] {
        let c = &self.config;
        let (h, rows) = (c.hidden, ids.len());
        assert!(len > 0 && len <= c.max_positions && rows.is_multiple_of(len));
        s.hidden.resize(rows * h, 0.0);
        s.qkv.resize(rows * 3 * h, 0.0);
        s.context.resize(rows * h, 0.0);
        s.projected.resize(rows * h, 0.0);
        s.inter.resize(rows * c.intermediate, 0.0);
        s.scores.resize(len, 0.0);

        for (r, (&id, x)) in ids.iter().zip(s.hidden.chunks_exact_mut(h)).enumerate() {
            let word = &self.word[id as usize * h..][..h];
            let pos = &self.position[(r % len) * h..][..h];
            for (((x, w), p), t) in x.iter_mut().zip(word).zip(pos).zip(&self.token_type) {
                *x = w + p + t;
            }
        }
        layer_norm(&mut s.hidden, &self.embed_norm, c.eps);

        let dh = h / c.heads;
        let scale = 1.0 / (dh as f32).sqrt();
        for layer in &self.layers {
            linear(
                &s.hidden,
                rows,
                h,
                &layer.qkv_w,
                3 * h,
                &layer.qkv_b,
                &mut s.qkv,
            );
            for seq in 0..rows / len {
                let base = seq * len;
                for head in 0..c.heads {
                    let off = head * dh;
                    for i in 0..len {
                        let q = &s.qkv[(base + i) * 3 * h + off..][..dh];
                        let mut max = f32::NEG_INFINITY;
                        for (j, score) in s.scores.iter_mut().enumerate() {
                            let k = &s.qkv[(base + j) * 3 * h + h + off..][..dh];
                            *score = dot(q, k) * scale;
                            max = max.max(*score);
                        }
                        let mut sum = 0.0;
                        for score in s.scores.iter_mut() {
                            *score = (*score - max).exp();
                            sum += *score;
                        }
                        let ctx = &mut s.context[(base + i) * h + off..][..dh];
                        ctx.fill(0.0);
                        for (j, &p) in s.scores.iter().enumerate() {
                            let v = &s.qkv[(base + j) * 3 * h + 2 * h + off..][..dh];
                            let p = p / sum;
                            axpy(ctx, p, v);
                        }
                    }
                }
            }
            linear(
                &s.context,
                rows,
                h,
                &layer.attn_out_w,
                h,
                &layer.attn_out_b,
                &mut s.projected,
            );
            add_layer_norm(&mut s.hidden, &s.projected, &layer.attn_norm, c.eps);
            linear(
                &s.hidden,
                rows,
                h,
                &layer.inter_w,
                c.intermediate,
                &layer.inter_b,
                &mut s.inter,
            );
            gelu_in_place(&mut s.inter);
            linear(
                &s.inter,
                rows,
                c.intermediate,
                &layer.out_w,
                h,
                &layer.out_b,
                &mut s.projected,
            );
            add_layer_norm(&mut s.hidden, &s.projected, &layer.out_norm, c.eps);
        }
        &s.hidden
    }

    /// Mean-pooled, L2-normalized vectors of `[CLS] t [SEP]` for every token `t`, appended
    /// to `out`.
    fn encode_tokens_into(&self, tokens: &[u32], cls: u32, sep: u32, out: &mut Vec<f32>) {
        let h = self.config.hidden;
        let mut scratch = Scratch::default();
        let mut ids = Vec::with_capacity(BATCH * 3);
        for batch in tokens.chunks(BATCH) {
            ids.clear();
            ids.extend(batch.iter().flat_map(|&t| [cls, t, sep]));
            let hidden = self.forward(&ids, 3, &mut scratch);
            for seq in hidden.chunks_exact(3 * h) {
                let start = out.len();
                out.extend((0..h).map(|d| (seq[d] + seq[h + d] + seq[2 * h + d]) / 3.0));
                normalize(&mut out[start..]);
            }
        }
    }
}

/// Encodes `tokens` on `threads` threads, each taking an equal contiguous share; the vectors
/// come back in the order of `tokens`.
fn encode_tokens(
    bert: &Bert,
    tokens: &[u32],
    cls: u32,
    sep: u32,
    threads: usize,
) -> Result<Vec<f32>, String> {
    if let Some(&bad) = tokens
        .iter()
        .find(|&&t| t as usize >= bert.config.vocab_size)
    {
        return Err(format!("token id {bad} is past the word embeddings"));
    }
    let share = tokens.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = tokens
            .chunks(share)
            .map(|part| {
                scope.spawn(move || {
                    let mut out = Vec::with_capacity(part.len() * bert.config.hidden);
                    bert.encode_tokens_into(part, cls, sep, &mut out);
                    out
                })
            })
            .collect();
        let mut all = Vec::with_capacity(tokens.len() * bert.config.hidden);
        for handle in handles {
            all.extend(
                handle
                    .join()
                    .map_err(|_| "a distillation thread panicked".to_string())?,
            );
        }
        Ok(all)
    })
}

/// `c[m, n] = a[m, k] · w[n, k]ᵀ + bias`: a PyTorch linear layer over `m` rows.
fn linear(a: &[f32], m: usize, k: usize, w: &[f32], n: usize, bias: &[f32], c: &mut [f32]) {
    assert!(a.len() >= m * k && w.len() == n * k && bias.len() == n && c.len() >= m * n);
    for row in c[..m * n].chunks_exact_mut(n) {
        row.copy_from_slice(bias);
    }
    // SAFETY: the assert above keeps every index the strides reach inside the slices: `a` is
    // read as m×k row-major, `w` as its transpose k×n (row stride 1, column stride k), and
    // `c` written as m×n row-major; beta = 1 adds the product to the bias already there.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            w.as_ptr(),
            1,
            k as isize,
            1.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

// The element-wise kernels below are `while` loops over re-sliced rows: unoptimized (debug)
// builds run every iterator adapter as a function call, several times slower, while optimized
// builds vectorize both forms alike.

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (mut sum, mut i) = (0.0, 0);
    while i < n {
        sum += a[i] * b[i];
        i += 1;
    }
    sum
}

/// `y += a · x`.
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    let n = y.len().min(x.len());
    let (y, x) = (&mut y[..n], &x[..n]);
    let mut i = 0;
    while i < n {
        y[i] += a * x[i];
        i += 1;
    }
}

/// Applies GELU to every element.
fn gelu_in_place(x: &mut [f32]) {
    let mut i = 0;
    while i < x.len() {
        x[i] = gelu(x[i]);
        i += 1;
    }
}

/// Exact GELU, as BERT's `hidden_act: "gelu"`: `x · Φ(x)`, through the error function.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// The error function, as a branch-free rational approximation `x · P(x²) / Q(x²)` on
/// [-4, 4] (beyond, erf is 1 to within 2e-8): its error is under 1e-7, below f32's precision
/// near 1. libm's `erff` is as exact but branches on the argument, which keeps the loop from
/// vectorizing and made it a quarter of the distillation time. Evaluated in f64 so that
/// rounding does not add to the approximation's error.
fn erf(x: f32) -> f32 {
    // Horner's scheme written out: no loop or indexing for a debug build to execute.
    let x = f64::from(x.clamp(-4.0, 4.0));
    let z = x * x;
    let p = -2.726_142_258_013_06e-10;
    let p = p * z + 2.770_681_424_959_02e-8;
    let p = p * z - 2.101_024_020_825_08e-6;
    let p = p * z - 5.692_506_394_623_46e-5;
    let p = p * z - 7.349_906_303_268_55e-4;
    let p = p * z - 2.954_599_808_540_25e-3;
    let p = p * z - 1.609_603_332_624_15e-2;
    let q = -1.456_607_184_649_96e-5;
    let q = q * z - 2.133_740_552_789_05e-4;
    let q = q * z - 1.682_826_974_382_03e-3;
    let q = q * z - 7.373_329_167_204_68e-3;
    let q = q * z - 1.426_473_905_141_89e-2;
    (x * p / q) as f32
}

/// Normalizes each row of `x` in place (rows of `norm.gamma.len()`).
fn layer_norm(x: &mut [f32], norm: &LayerNorm, eps: f32) {
    let n = norm.gamma.len();
    let (gamma, beta) = (&norm.gamma[..n], &norm.beta[..n]);
    for row in x.chunks_exact_mut(n) {
        let (mut sum, mut i) = (0.0, 0);
        while i < n {
            sum += row[i];
            i += 1;
        }
        let mean = sum / n as f32;
        let (mut var, mut i) = (0.0, 0);
        while i < n {
            let d = row[i] - mean;
            var += d * d;
            i += 1;
        }
        let inv = 1.0 / (var / n as f32 + eps).sqrt();
        let mut i = 0;
        while i < n {
            row[i] = (row[i] - mean) * inv * gamma[i] + beta[i];
            i += 1;
        }
    }
}

/// `x = LayerNorm(x + residual)`: a BERT sub-layer's residual connection.
fn add_layer_norm(x: &mut [f32], residual: &[f32], norm: &LayerNorm, eps: f32) {
    axpy(x, 1.0, residual);
    layer_norm(x, norm, eps);
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const VOCAB: [&str; 12] = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[unused0]",
        "get",
        "weather",
        "user",
        "delete",
        "##s",
        "account",
        "city",
    ];
    const HIDDEN: usize = 8;
    const HEADS: usize = 2;
    const INTER: usize = 16;
    const LAYERS: usize = 2;
    const POSITIONS: usize = 16;

    fn tokenizer_json(model_type: &str) -> String {
        let vocab: serde_json::Map<String, Value> = VOCAB
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), Value::from(i)))
            .collect();
        serde_json::json!({
            "normalizer": {"type": "BertNormalizer", "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "model": {"type": model_type, "unk_token": "[UNK]", "vocab": vocab}
        })
        .to_string()
    }

    /// A deterministic generator of floats in [-1, 1).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }

        fn vec(&mut self, n: usize, scale: f32, offset: f32) -> Vec<f32> {
            (0..n).map(|_| offset + scale * self.next()).collect()
        }
    }

    type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn write_safetensors(path: &Path, tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)]) {
        let views: Vec<(String, TensorView)> = tensors
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                (
                    name.clone(),
                    TensorView::new(*dtype, shape.clone(), bytes).unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, None, path).unwrap();
    }

    /// Writes a random two-layer BERT (config, weights under `prefix`, tokenizer) to `dir`
    /// and returns its tensors, unprefixed, for the reference computation.
    fn write_tiny_bert(dir: &Path, prefix: &str) -> Tensors {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut t = Tensors::new();
        let mut add = |name: &str, shape: &[usize], scale: f32, offset: f32| {
            let n = shape.iter().product();
            t.insert(
                name.to_string(),
                (shape.to_vec(), rng.vec(n, scale, offset)),
            );
        };
        let v = VOCAB.len();
        add("embeddings.word_embeddings.weight", &[v, HIDDEN], 1.0, 0.0);
        add(
            "embeddings.position_embeddings.weight",
            &[POSITIONS, HIDDEN],
            0.5,
            0.0,
        );
        add(
            "embeddings.token_type_embeddings.weight",
            &[2, HIDDEN],
            0.5,
            0.0,
        );
        add("embeddings.LayerNorm.weight", &[HIDDEN], 0.2, 1.0);
        add("embeddings.LayerNorm.bias", &[HIDDEN], 0.1, 0.0);
        for l in 0..LAYERS {
            let p = format!("encoder.layer.{l}");
            for part in ["query", "key", "value"] {
                add(
                    &format!("{p}.attention.self.{part}.weight"),
                    &[HIDDEN, HIDDEN],
                    0.6,
                    0.0,
                );
                add(
                    &format!("{p}.attention.self.{part}.bias"),
                    &[HIDDEN],
                    0.1,
                    0.0,
                );
            }
            add(
                &format!("{p}.attention.output.dense.weight"),
                &[HIDDEN, HIDDEN],
                0.4,
                0.0,
            );
            add(
                &format!("{p}.attention.output.dense.bias"),
                &[HIDDEN],
                0.1,
                0.0,
            );
            add(
                &format!("{p}.attention.output.LayerNorm.weight"),
                &[HIDDEN],
                0.2,
                1.0,
            );
            add(
                &format!("{p}.attention.output.LayerNorm.bias"),
                &[HIDDEN],
                0.1,
                0.0,
            );
            add(
                &format!("{p}.intermediate.dense.weight"),
                &[INTER, HIDDEN],
                0.5,
                0.0,
            );
            add(&format!("{p}.intermediate.dense.bias"), &[INTER], 0.1, 0.0);
            add(
                &format!("{p}.output.dense.weight"),
                &[HIDDEN, INTER],
                0.3,
                0.0,
            );
            add(&format!("{p}.output.dense.bias"), &[HIDDEN], 0.1, 0.0);
            add(&format!("{p}.output.LayerNorm.weight"), &[HIDDEN], 0.2, 1.0);
            add(&format!("{p}.output.LayerNorm.bias"), &[HIDDEN], 0.1, 0.0);
        }
        // A tensor the encoder does not use, as real checkpoints have.
        add("pooler.dense.weight", &[HIDDEN, HIDDEN], 0.1, 0.0);
        let mut files: Vec<_> = t
            .iter()
            .map(|(name, (shape, data))| {
                (
                    format!("{prefix}{name}"),
                    Dtype::F32,
                    shape.clone(),
                    f32_bytes(data),
                )
            })
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        write_safetensors(&dir.join("model.safetensors"), &files);
        let config = serde_json::json!({
            "model_type": "bert", "hidden_act": "gelu", "vocab_size": v,
            "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
            "intermediate_size": INTER, "max_position_embeddings": POSITIONS,
            "type_vocab_size": 2, "layer_norm_eps": 1e-12
        });
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        std::fs::write(dir.join("tokenizer.json"), tokenizer_json("WordPiece")).unwrap();
        t
    }

    /// A plain f64 BERT forward pass over one sequence: the hidden state of each position.
    fn reference(t: &Tensors, ids: &[u32]) -> Vec<Vec<f64>> {
        let get = |name: &str| -> Vec<f64> { t[name].1.iter().map(|&x| x as f64).collect() };
        let linear = |x: &[f64], name: &str| -> Vec<f64> {
            let (w, b) = (get(&format!("{name}.weight")), get(&format!("{name}.bias")));
            (0..b.len())
                .map(|o| b[o] + (0..x.len()).map(|i| w[o * x.len() + i] * x[i]).sum::<f64>())
                .collect()
        };
        let norm = |x: &[f64], name: &str| -> Vec<f64> {
            let (g, b) = (get(&format!("{name}.weight")), get(&format!("{name}.bias")));
            let n = x.len() as f64;
            let mean = x.iter().sum::<f64>() / n;
            let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            (0..x.len())
                .map(|i| (x[i] - mean) / (var + 1e-12).sqrt() * g[i] + b[i])
                .collect()
        };
        let (word, pos, tt) = (
            get("embeddings.word_embeddings.weight"),
            get("embeddings.position_embeddings.weight"),
            get("embeddings.token_type_embeddings.weight"),
        );
        let mut x: Vec<Vec<f64>> = ids
            .iter()
            .enumerate()
            .map(|(p, &id)| {
                let e: Vec<f64> = (0..HIDDEN)
                    .map(|d| word[id as usize * HIDDEN + d] + pos[p * HIDDEN + d] + tt[d])
                    .collect();
                norm(&e, "embeddings.LayerNorm")
            })
            .collect();
        let dh = HIDDEN / HEADS;
        for l in 0..LAYERS {
            let p = format!("encoder.layer.{l}");
            let q: Vec<_> = x
                .iter()
                .map(|r| linear(r, &format!("{p}.attention.self.query")))
                .collect();
            let k: Vec<_> = x
                .iter()
                .map(|r| linear(r, &format!("{p}.attention.self.key")))
                .collect();
            let v: Vec<_> = x
                .iter()
                .map(|r| linear(r, &format!("{p}.attention.self.value")))
                .collect();
            let mut ctx = vec![vec![0.0; HIDDEN]; ids.len()];
            for h in 0..HEADS {
                for i in 0..ids.len() {
                    let s: Vec<f64> = (0..ids.len())
                        .map(|j| {
                            (0..dh)
                                .map(|d| q[i][h * dh + d] * k[j][h * dh + d])
                                .sum::<f64>()
                                / (dh as f64).sqrt()
                        })
                        .collect();
                    let z: f64 = s.iter().map(|s| s.exp()).sum();
                    for j in 0..ids.len() {
                        for d in 0..dh {
                            ctx[i][h * dh + d] += s[j].exp() / z * v[j][h * dh + d];
                        }
                    }
                }
            }
            for i in 0..ids.len() {
                let a = linear(&ctx[i], &format!("{p}.attention.output.dense"));
                let sum: Vec<f64> = (0..HIDDEN).map(|d| a[d] + x[i][d]).collect();
                let y = norm(&sum, &format!("{p}.attention.output.LayerNorm"));
                let inter: Vec<f64> = linear(&y, &format!("{p}.intermediate.dense"))
                    .into_iter()
                    .map(|z| 0.5 * z * (1.0 + erf_series(z / std::f64::consts::SQRT_2)))
                    .collect();
                let o = linear(&inter, &format!("{p}.output.dense"));
                let sum: Vec<f64> = (0..HIDDEN).map(|d| o[d] + y[d]).collect();
                x[i] = norm(&sum, &format!("{p}.output.LayerNorm"));
            }
        }
        x
    }

    #[test]
    fn forward_matches_a_plain_implementation() {
        let dir = tempfile::tempdir().unwrap();
        let t = write_tiny_bert(dir.path(), "");
        let config = BertConfig::read(&dir.path().join("config.json")).unwrap();
        let bert = Bert::read(&dir.path().join("model.safetensors"), &config).unwrap();
        // Two sequences of five in one batch: attention must stay within each.
        let ids = [2, 5, 6, 9, 3, 2, 8, 7, 10, 3];
        let mut scratch = Scratch::default();
        let got = bert.forward(&ids, 5, &mut scratch).to_vec();
        for (seq, chunk) in ids.chunks(5).enumerate() {
            let want = reference(&t, chunk);
            for (p, row) in want.iter().enumerate() {
                for (d, w) in row.iter().enumerate() {
                    let g = got[(seq * 5 + p) * HIDDEN + d] as f64;
                    assert!(
                        (g - w).abs() < 1e-4,
                        "seq {seq} pos {p} dim {d}: {g} vs {w}"
                    );
                }
            }
        }
        // A smaller batch after a larger one reuses the buffers at the right length.
        let again = bert.forward(&ids[..5], 5, &mut scratch);
        assert_eq!(again.len(), 5 * HIDDEN);
        assert_eq!(again, &got[..5 * HIDDEN]);
    }

    #[test]
    fn distill_writes_the_pooled_vectors() {
        let dir = tempfile::tempdir().unwrap();
        let t = write_tiny_bert(dir.path(), "bert.");
        let out = dir.path().join("static");
        let report = distill(dir.path(), &out).unwrap();
        assert_eq!((report.vocab_size, report.dim), (VOCAB.len(), HIDDEN));
        // [PAD] and [unused0] are not encoded.
        assert_eq!((report.embedded, report.skipped), (VOCAB.len() - 2, 2));
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["model_type"], "model2vec");
        assert_eq!(config["hidden_dim"].as_u64(), Some(HIDDEN as u64));
        assert_eq!(config["normalize"], true);
        assert_eq!(
            std::fs::read(out.join("tokenizer.json")).unwrap(),
            std::fs::read(dir.path().join("tokenizer.json")).unwrap()
        );

        let unit = |v: &mut Vec<f64>| {
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
        };
        let encoded = |token: &str| !matches!(token, "[PAD]" | "[unused0]");
        // Mean-pooled and normalized, then centered on the vocabulary's mean and normalized.
        let mut pooled: Vec<Vec<f64>> = (0..VOCAB.len())
            .map(|id| {
                let states = reference(&t, &[2, id as u32, 3]);
                let mut v: Vec<f64> = (0..HIDDEN)
                    .map(|d| states.iter().map(|s| s[d]).sum::<f64>() / 3.0)
                    .collect();
                unit(&mut v);
                v
            })
            .collect();
        let embedded: Vec<usize> = (0..VOCAB.len()).filter(|&i| encoded(VOCAB[i])).collect();
        let mean: Vec<f64> = (0..HIDDEN)
            .map(|d| embedded.iter().map(|&i| pooled[i][d]).sum::<f64>() / embedded.len() as f64)
            .collect();
        let mean_norm = mean.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((report.mean_norm as f64 - mean_norm).abs() < 1e-4);
        for &i in &embedded {
            pooled[i].iter_mut().zip(&mean).for_each(|(x, m)| *x -= m);
            unit(&mut pooled[i]);
        }

        let model = StaticModel::load(&out).unwrap();
        assert_eq!((model.dim(), model.vocab_size()), (HIDDEN, VOCAB.len()));
        for (id, token) in VOCAB.iter().enumerate() {
            let row: Vec<f32> = model.rows[id * HIDDEN..][..HIDDEN]
                .iter()
                .map(|x| x.to_f32())
                .collect();
            if !encoded(token) {
                assert!(row.iter().all(|&x| x == 0.0), "{token}");
                continue;
            }
            let want = &pooled[id];
            for (g, w) in row.iter().zip(want) {
                // f16 keeps about three decimal digits.
                assert!((*g as f64 - w).abs() < 2e-3, "{token}: {row:?} vs {want:?}");
            }
        }
        // Specials are stored but never embedded; ordinary tokens are.
        assert!(!model.is_embedded(2) && !model.is_embedded(1) && !model.is_embedded(0));
        assert!(model.is_embedded(5));
    }

    #[test]
    fn distill_refuses_what_it_cannot_run() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_bert(dir.path(), "");
        let out = dir.path().join("out");
        let config_path = dir.path().join("config.json");
        let good = std::fs::read_to_string(&config_path).unwrap();
        std::fs::write(&config_path, good.replace("\"bert\"", "\"roberta\"")).unwrap();
        let err = distill(dir.path(), &out).unwrap_err();
        assert!(
            err.contains("config.json") && err.contains("roberta"),
            "{err}"
        );
        std::fs::write(
            &config_path,
            good.replace("\"hidden_size\":8", "\"hidden_size\":6"),
        )
        .unwrap();
        let err = distill(dir.path(), &out).unwrap_err();
        assert!(
            err.contains("model.safetensors") && err.contains("shape"),
            "{err}"
        );
        std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
        std::fs::write(&config_path, good).unwrap();
        let err = distill(dir.path(), &out).unwrap_err();
        assert!(err.contains("model.safetensors"), "{err}");
    }

    /// Writes a model2vec directory with an f32 `embeddings` matrix and optional extras.
    fn write_static(
        dir: &Path,
        rows: &[[f32; 4]],
        extra: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    ) {
        std::fs::write(dir.join("tokenizer.json"), tokenizer_json("WordPiece")).unwrap();
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let mut tensors = vec![(
            "embeddings".to_string(),
            Dtype::F32,
            vec![rows.len(), 4],
            f32_bytes(&flat),
        )];
        tensors.extend(extra);
        write_safetensors(&dir.join("model.safetensors"), &tensors);
    }

    fn embed(model: &StaticModel, text: &str, weight: impl Fn(u32) -> f32) -> Vec<f32> {
        let mut ids = Vec::new();
        model.tokenize(text, &mut ids);
        let mut out = vec![f32::NAN; model.dim()];
        model.embed_weighted(&ids, weight, &mut out);
        out
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-3)
    }

    #[test]
    fn embeds_the_weighted_mean_of_known_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = [[0.0f32; 4]; 12];
        rows[2] = [5.0, 5.0, 5.0, 5.0]; // [CLS]: stored, never used
        rows[5] = [1.0, 0.0, 0.0, 0.0]; // get
        rows[6] = [0.0, 1.0, 0.0, 0.0]; // weather
        rows[7] = [0.0, 0.0, 2.0, 0.0]; // user
        // "delete" (8) keeps a zero row.
        write_static(dir.path(), &rows, Vec::new());
        let model = StaticModel::load(dir.path()).unwrap();
        assert_eq!(model.dim(), 4);
        assert!(model.memory_bytes() >= 12 * 4 * 2);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!(close(
            &embed(&model, "Get WEATHER", |_| 1.0),
            &[h, h, 0.0, 0.0]
        ));
        let w = |id: u32| if id == 5 { 3.0 } else { 1.0 };
        let n = 10f32.sqrt();
        assert!(close(
            &embed(&model, "get weather", w),
            &[3.0 / n, 1.0 / n, 0.0, 0.0]
        ));
        // Unknown words, zero rows and specials add nothing.
        assert!(close(
            &embed(&model, "user zzz delete", |_| 1.0),
            &[0.0, 0.0, 1.0, 0.0]
        ));
        assert_eq!(embed(&model, "zzz delete", |_| 1.0), [0.0; 4]);
        let mut out = [1.0f32; 4];
        model.embed_weighted(&[2, 3, 99], |_| 1.0, &mut out);
        assert_eq!(out, [0.0; 4]);
        // accumulate adds unnormalized rows.
        let mut acc = [0.0f32; 4];
        model.accumulate(7, 0.5, &mut acc);
        model.accumulate(5, 2.0, &mut acc);
        model.accumulate(2, 1.0, &mut acc);
        assert!(close(&acc, &[2.0, 0.0, 1.0, 0.0]));
    }

    #[test]
    fn loads_weights_and_a_token_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let rows = [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
        ];
        // get → row 0, weather → row 1, everything else → row 2 (zero).
        let mapping: Vec<u8> = (0..12i64)
            .map(|id| match id {
                5 => 0,
                6 => 1,
                _ => 2,
            })
            .flat_map(|r: i64| r.to_le_bytes())
            .collect();
        let weights: Vec<f32> = (0..12).map(|id| if id == 6 { 2.0 } else { 1.0 }).collect();
        write_static(
            dir.path(),
            &rows,
            vec![
                ("mapping".into(), Dtype::I64, vec![12], mapping),
                (
                    "weights".into(),
                    Dtype::F32,
                    vec![12, 1],
                    f32_bytes(&weights),
                ),
            ],
        );
        let model = StaticModel::load(dir.path()).unwrap();
        let n = 5f32.sqrt();
        assert!(close(
            &embed(&model, "get weather", |_| 1.0),
            &[1.0 / n, 2.0 / n, 0.0, 0.0]
        ));
        assert!(!model.is_embedded(7));
    }

    #[test]
    fn load_errors_name_the_file_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let err = StaticModel::load(dir.path()).unwrap_err();
        assert!(err.contains("tokenizer.json"), "{err}");

        std::fs::write(dir.path().join("tokenizer.json"), tokenizer_json("Unigram")).unwrap();
        let err = StaticModel::load(dir.path()).unwrap_err();
        assert!(
            err.contains("tokenizer.json") && err.contains("\"Unigram\""),
            "{err}"
        );

        write_static(dir.path(), &[[1.0; 4]; 11], Vec::new());
        let err = StaticModel::load(dir.path()).unwrap_err();
        assert!(
            err.contains("model.safetensors")
                && err.contains("12 tokens")
                && err.contains("11 rows"),
            "{err}"
        );

        std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
        let err = StaticModel::load(dir.path()).unwrap_err();
        assert!(err.contains("model.safetensors"), "{err}");

        write_safetensors(
            &dir.path().join("model.safetensors"),
            &[(
                "embeddings".into(),
                Dtype::F32,
                vec![48],
                f32_bytes(&[0.5; 48]),
            )],
        );
        let err = StaticModel::load(dir.path()).unwrap_err();
        assert!(err.contains("shape") && err.contains("[48]"), "{err}");

        write_safetensors(
            &dir.path().join("model.safetensors"),
            &[(
                "vectors".into(),
                Dtype::F32,
                vec![12, 4],
                f32_bytes(&[0.5; 48]),
            )],
        );
        let err = StaticModel::load(dir.path()).unwrap_err();
        assert!(
            err.contains("no tensor \"embeddings\"") && err.contains("vectors"),
            "{err}"
        );

        write_safetensors(
            &dir.path().join("model.safetensors"),
            &[("embeddings".into(), Dtype::U8, vec![12, 4], vec![1; 48])],
        );
        let err = StaticModel::load(dir.path()).unwrap_err();
        assert!(err.contains("dtype") && err.contains("U8"), "{err}");

        let mut big = [0.5f32; 48];
        big[4 * 7 + 1] = 1e6;
        write_safetensors(
            &dir.path().join("model.safetensors"),
            &[(
                "embeddings".into(),
                Dtype::F32,
                vec![12, 4],
                f32_bytes(&big),
            )],
        );
        let err = StaticModel::load(dir.path()).unwrap_err();
        assert!(err.contains("row 7") && err.contains("f16"), "{err}");
    }

    /// erf by its Taylor series, in f64: slow, and exact to about 1e-11 (past 4.5, where the
    /// series cancels badly, erf is 1 to within 3e-10).
    fn erf_series(x: f64) -> f64 {
        if x.abs() > 4.5 {
            return x.signum();
        }
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_is_within_1e7() {
        let mut worst = 0.0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            worst = worst.max((erf(x) as f64 - erf_series(x as f64)).abs());
        }
        assert!(worst < 1.5e-7, "{worst:e}");
        // Φ(1) = 0.841344746..., Φ(-2) = 0.022750131...
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu(-2.0) + 2.0 * 0.022_750_132).abs() < 1e-6);
        assert_eq!(gelu(0.0), 0.0);
    }

    #[test]
    fn recognises_unused_tokens() {
        assert!(is_unused_token("[unused0]") && is_unused_token("[unused993]"));
        assert!(
            !is_unused_token("[unused]")
                && !is_unused_token("unused1")
                && !is_unused_token("[UNK]")
        );
    }
}
