#pragma once
// Storage types of tensors across safetensors, GGUF and HDF5. Block types (the ggml quantizations) store
// blockElements() values in blockBytes() bytes; plain types have a block of one element.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace qs {

enum class DType : uint8_t {
    // Plain element types (safetensors names; HDF5 maps onto these).
    F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U64, U32, U16, U8, Bool,
    // ggml block types. The numeric ggml type id is kept in DTypeInfo::ggmlType.
    Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K,
    IQ2_XXS, IQ2_XS, IQ3_XXS, IQ1_S, IQ4_NL, IQ3_S, IQ2_S, IQ4_XS, I8_GGML, I16_GGML, I32_GGML, I64_GGML,
    F64_GGML, IQ1_M, TQ1_0, TQ2_0, MXFP4,
    // A quantized weight stored as several tensors (compressed-tensors, GPTQ): TensorInfo::packed says how
    // it decodes; decodeToFloat() cannot decode it alone.
    Packed,
    Count
};

struct DTypeInfo {
    DType type;
    const char* name;      // "F32", "BF16", "Q4_K", ...
    uint32_t blockElements; // values per block (1 for plain types)
    uint32_t blockBytes;    // bytes per block
    int ggmlType;           // ggml_type id, -1 when the type has no ggml equivalent
    bool decodable;         // decodeToFloat() supports it
};

const DTypeInfo& dtypeInfo(DType type);
inline const char* dtypeName(DType type) { return dtypeInfo(type).name; }
// Bits per stored value including block scales: blockBytes * 8 / blockElements.
double dtypeBitsPerWeight(DType type);
std::optional<DType> dtypeFromName(std::string_view name);       // by DTypeInfo::name (case-insensitive)
std::optional<DType> dtypeFromGgmlType(uint32_t ggmlType);
// Bytes for n elements, nullopt when n is not a multiple of the block size or overflows.
std::optional<uint64_t> dtypeByteSize(DType type, uint64_t elements);

// Decodes n values (n a multiple of the block size) stored little-endian at src into dst.
// Bit-exact with ggml's dequantization for the ggml types. Throws qs::Error(Unsupported) when
// !dtypeInfo(type).decodable. src needs no alignment.
void decodeToFloat(DType type, const void* src, uint64_t n, float* dst);

// IEEE binary16 <-> float. halfToFloat is exact; floatToHalf rounds to nearest even.
float halfToFloat(uint16_t h);
uint16_t floatToHalf(float f);
// bfloat16: the top half of a float; floatToBf16 rounds to nearest even (NaN stays NaN).
float bf16ToFloat(uint16_t h);
uint16_t floatToBf16(float f);

} // namespace qs
