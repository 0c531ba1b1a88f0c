#pragma once
// ggml block formats: dequantization (bit-exact with ggml) and quantization (row-wise, optionally
// importance-weighted). Shared between the GGUF loader (decoding) and the quantization formats.

#include "core/model/dtype.h"

#include <cstdint>

namespace qs::ggml {

// Both directions handle F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
// IQ4_NL, IQ4_XS and MXFP4; block layouts are in ggml_blocks.h.

// True when decode() handles this type.
bool canDecode(DType type);
// Decodes n values (a multiple of the block size) from src to dst; bit-exact with ggml's to_float.
// src needs no alignment. Throws qs::Error (Unsupported / BadValue) for other types or a partial block.
void decode(DType type, const void* src, uint64_t n, float* dst);

// True when quantize() handles this type.
bool canQuantize(DType type);
// Quantizes `rows` rows of `rowLength` values (rowLength a multiple of the block size) from src into dst
// (dtypeByteSize(type, rows * rowLength) bytes). importance, when not null, has rowLength entries (one per
// column, as llama.cpp's imatrix) and selects the importance-weighted search. Without importance the
// legacy types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) reproduce ggml's reference bytes exactly; so do, on the
// reference tensors, all other types with and without importance (same algorithms as ggml). Q8_0, MXFP4
// and the float types ignore importance, as ggml does. Non-finite input never crashes (the block it
// produces is unspecified). Single-threaded; rows are independent, so callers may split them.
// Returns the number of bytes written. Throws qs::Error for other types or a bad row length.
uint64_t quantize(DType type, const float* src, uint64_t rows, uint64_t rowLength, void* dst,
                  const float* importance = nullptr);

} // namespace qs::ggml
