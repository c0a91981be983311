//! A tiny keypoint regressor written as ONNX protobuf bytes by hand, so the
//! tests can load "a model exported from PyTorch" without Python.
//!
//! The graph: `image` (1×3×S×S) → GlobalAveragePool → Flatten → MatMul by
//! `w` (3×2N) → Add `b` (2N) → `points` (1×2N). With `w` zero the points are
//! `b` whatever the image, which makes where they land in the frame exact.

/// Protobuf wire types.
const VARINT: u64 = 0;
const LEN: u64 = 2;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

fn int(out: &mut Vec<u8>, field: u64, v: i64) {
    key(out, field, VARINT);
    varint(out, v as u64);
}

fn bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    key(out, field, LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn string(out: &mut Vec<u8>, field: u64, s: &str) {
    bytes(out, field, s.as_bytes());
}

/// ONNX `TensorProto.FLOAT`.
const FLOAT: i64 = 1;

/// TensorProto: dims (1), data_type (2), name (8), raw_data (9).
fn tensor(name: &str, dims: &[i64], values: &[f32]) -> Vec<u8> {
    let mut t = Vec::new();
    for &d in dims {
        int(&mut t, 1, d);
    }
    int(&mut t, 2, FLOAT);
    string(&mut t, 8, name);
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    bytes(&mut t, 9, &raw);
    t
}

/// ValueInfoProto of a float tensor: name (1), type (2) → tensor_type (1)
/// → elem_type (1), shape (2) → dim (1) → dim_value (1).
fn value_info(name: &str, dims: &[i64]) -> Vec<u8> {
    let mut shape = Vec::new();
    for &d in dims {
        let mut dim = Vec::new();
        int(&mut dim, 1, d);
        bytes(&mut shape, 1, &dim);
    }
    let mut tensor_type = Vec::new();
    int(&mut tensor_type, 1, FLOAT);
    bytes(&mut tensor_type, 2, &shape);
    let mut ty = Vec::new();
    bytes(&mut ty, 1, &tensor_type);
    let mut v = Vec::new();
    string(&mut v, 1, name);
    bytes(&mut v, 2, &ty);
    v
}

/// NodeProto: input (1), output (2), name (3), op_type (4).
fn node(op: &str, inputs: &[&str], output: &str) -> Vec<u8> {
    let mut n = Vec::new();
    for i in inputs {
        string(&mut n, 1, i);
    }
    string(&mut n, 2, output);
    string(&mut n, 3, output);
    string(&mut n, 4, op);
    n
}

/// The regressor's ONNX bytes: `size`×`size` RGB input named `image`,
/// output `points` = `bias` (2 values per point).
pub fn keypoint_regressor(size: i64, bias: &[f32]) -> Vec<u8> {
    let n = bias.len() as i64;
    let mut graph = Vec::new();
    for nd in [
        node("GlobalAveragePool", &["image"], "pooled"),
        node("Flatten", &["pooled"], "flat"),
        node("MatMul", &["flat", "w"], "moved"),
        node("Add", &["moved", "b"], "points"),
    ] {
        bytes(&mut graph, 1, &nd);
    }
    string(&mut graph, 2, "tiny_keypoint_regressor");
    bytes(
        &mut graph,
        5,
        &tensor("w", &[3, n], &vec![0.0; 3 * n as usize]),
    );
    bytes(&mut graph, 5, &tensor("b", &[n], bias));
    bytes(&mut graph, 11, &value_info("image", &[1, 3, size, size]));
    bytes(&mut graph, 12, &value_info("points", &[1, n]));

    let mut model = Vec::new();
    int(&mut model, 1, 8); // ir_version
    string(&mut model, 2, "kao tests");
    bytes(&mut model, 7, &graph);
    let mut opset = Vec::new();
    string(&mut opset, 1, "");
    int(&mut opset, 2, 13);
    bytes(&mut model, 8, &opset);
    model
}
