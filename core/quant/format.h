#pragma once
// Quantization formats: how a tensor is stored (bits per weight including every scale, zero point and
// block header, exact to the byte) and its quantize/dequantize round trip, used to measure error.
// Names are case-insensitive: "BF16", "F16", "Q8_0", "Q4_K", "IQ4_XS", "INT8-ch-sym", "INT4-g128-asym",
// "INT3-g64-sym", "INT4-tensor-sym", "FP8-E4M3", "FP8-E4M3-ch", "FP8-E5M2", "NF4", "MXFP4".

#include "core/model/dtype.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qs {

enum class FormatKind : uint8_t { Float, Ggml, Integer, Fp8, Nf4, Mx };

struct FormatTraits {
    std::string name;           // canonical name, e.g. "INT4-g128-asym"
    FormatKind kind = FormatKind::Float;
    int bits = 16;              // bits of the quantized value itself
    // Scale granularity along a row: >0 group size, 0 one scale per tensor, -1 one scale per output row.
    int groupSize = 0;
    bool symmetric = true;
    std::optional<DType> storage; // the DType it is stored as when it is one (BF16, Q4_K, MXFP4 ...)
    std::string layout;         // one line on how it is stored, for listings ("GPTQ: int32-packed ...")
};

// Value range of a whole tensor, for per-tensor-scaled formats that see one row chunk at a time.
struct TensorRange {
    float min = 0;
    float max = 0;
    float absMax() const { return max > -min ? max : -min; }
};

class QuantFormat {
public:
    virtual ~QuantFormat() = default;
    virtual const FormatTraits& traits() const = 0;
    const std::string& name() const { return traits().name; }

    // Whether a rows x cols weight can be stored in this format (e.g. the block size divides cols).
    virtual bool supports(uint64_t rows, uint64_t cols) const = 0;
    // Exact stored bytes of a rows x cols tensor, including scales, zero points and block headers, in the
    // layout the ecosystem uses (ggml blocks; GPTQ qweight/qzeros/scales; compressed-tensors). nullopt
    // when !supports().
    virtual std::optional<uint64_t> storedBytes(uint64_t rows, uint64_t cols) const = 0;
    // Quantizes and dequantizes rows x cols values (row-major) into out. importance, when not null, has
    // cols entries (per input channel) and selects importance-weighted quantization where the format has it.
    virtual void roundTrip(const float* src, uint64_t rows, uint64_t cols, float* out,
                           const float* importance = nullptr) const = 0;
    // The representable values of one quantization group holding `values` (for the histogram overlay).
    // Empty for formats whose grid is too fine to draw (BF16, F16). For block formats with sub-block scales
    // (k-quants, IQ4_XS) it is the set of values the group's round trip actually uses.
    virtual std::vector<float> gridLevels(const float* values, size_t count) const = 0;

    // False when the codec behind the format is not built in (roundTrip would throw Unsupported).
    virtual bool available() const { return true; }
    // True when one scale covers the whole tensor: a caller that processes a tensor in row chunks must pass
    // the whole tensor's range to roundTripChunk for the result to equal roundTrip on the whole tensor.
    virtual bool needsTensorRange() const { return false; }
    virtual void roundTripChunk(const float* src, uint64_t rows, uint64_t cols, float* out,
                                const float* importance, const TensorRange& tensorRange) const
    {
        roundTrip(src, rows, cols, out, importance);
    }
    // Row chunks must hold a multiple of this many rows (NF4 blocks run across rows of the flat tensor).
    virtual uint64_t rowAlignment(uint64_t cols) const { return 1; }
};

// 8 * storedBytes / (rows * cols); nullopt when the format does not support the shape.
std::optional<double> formatBitsPerWeight(const QuantFormat& format, uint64_t rows, uint64_t cols);

// Looks a format up by name (case-insensitive, with aliases such as "int4" = "INT4-g128-asym").
// Returns nullptr for unknown names.
std::shared_ptr<const QuantFormat> findFormat(std::string_view name);
// Every built-in format's canonical name.
std::vector<std::string> allFormatNames();
// The default candidate list of the sensitivity matrix: BF16, Q8_0, INT8-ch-sym, Q6_K, Q5_K, Q4_K,
// INT4-g128-asym, Q3_K, Q2_K, FP8-E4M3, NF4.
std::vector<std::string> defaultSensitivityFormats();

} // namespace qs
