#pragma once
// ggml block formats: dequantization (bit-exact with ggml) and quantization (row-wise, optionally
// importance-weighted). Shared between the GGUF loader (decoding) and the quantization formats.

#include "core/model/dtype.h"

#include <cstdint>

namespace qs::ggml {

// True when decode() handles this type.
bool canDecode(DType type);
// Decodes n values (a multiple of the block size) from src to dst; bit-exact with ggml's to_float.
void decode(DType type, const void* src, uint64_t n, float* dst);

// True when quantize() handles this type.
bool canQuantize(DType type);
// Quantizes `rows` rows of `rowLength` values (rowLength a multiple of the block size) from src into dst
// (dtypeByteSize(type, rows * rowLength) bytes). importance, when not null, has rowLength entries (one per
// column, as llama.cpp's imatrix) and selects the importance-weighted search. Without importance the
// legacy types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) reproduce ggml's reference bytes exactly.
// Returns the number of bytes written.
uint64_t quantize(DType type, const float* src, uint64_t rows, uint64_t rowLength, void* dst,
                  const float* importance = nullptr);

} // namespace qs::ggml
