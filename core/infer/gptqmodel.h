#pragma once
// Sequential whole-model GPTQ: the linear layers are quantized block by block in model order, each with the
// Hessian of the inputs it sees when the earlier blocks are already quantized (as the original GPTQ does per
// model), using the forward pass's layer-wise path (core/infer/forward.h).
//
// The calibration text is tokenized once (BOS in front where the vocabulary adds it) and cut into
// non-overlapping sequences of ctx tokens, which run together as one batch. For each block l, in the
// original's "true sequential" order of sub-groups — {q, k, v}, {o}, {gate, up}, {down} — the block is run
// on the current hidden states with a hook that accumulates H = 2/n X^T X for the inputs of the sub-group's
// tensors; every tensor of the sub-group whose planned format is a per-group or per-channel integer format
// or a ggml type GPTQ rounds into (gptqConfigForFormat) is quantized with GPTQ and its dequantized weights are set as a weight override,
// so the next sub-group's inputs and the next block's inputs come from the quantized block. Tensors with
// other planned formats are fake-quantized by the plan (round to nearest) while calibrating; tensors outside
// the blocks (embeddings, output head) are not touched.
//
// From stored statistics (`hessians`, an activation statistics file written by `calibrate --out F.h5
// --hessians`): no forward pass; every tensor's H is 2 · XᵀX/n of its input in the original model. That is
// GPTQ without the sequential update (later layers see the original model's inputs, not the quantized
// one's), cheaper and reusable across plans; docs/gptq.md compares the two.
//
// Memory: the hidden states of the calibration batch (hidden x tokens floats, twice), one layer's weights,
// one H per tensor of the current sub-group, and the results (codes and dequantized weights) of every
// quantized tensor.

#include "core/io/checkpointwriter.h"
#include "core/model/dtype.h"
#include "core/plan/plan.h"
#include "core/quant/gptq.h"
#include "core/util/job.h"

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace qs {

struct ActivationStats;
class ImportanceMatrix;
class Model;

struct GptqModelParams {
    std::shared_ptr<const Model> model;
    Plan plan;                      // which tensors, in which format
    std::string text;               // calibration text (UTF-8); ignored when tokens is not empty
    std::filesystem::path textFile; // read when text and tokens are empty (at most 1 GiB)
    std::vector<int32_t> tokens;    // already tokenized calibration text, used as given
    uint32_t ctx = 0;               // tokens per calibration sequence; 0: min(512, the model's maximum)
    uint32_t maxSequences = 0;      // 0: every whole sequence of the text (at least one is needed)
    // ggml types: the imatrix steering each block quantizer's scale search (as llama-quantize); may be null.
    std::shared_ptr<const ImportanceMatrix> importance;
    // Stored Hessians (see above): used instead of the calibration text when set; every GPTQ tensor must have
    // its input's XᵀX there.
    std::shared_ptr<const ActivationStats> hessians;
    bool actOrder = false;          // GptqConfig options applied to every tensor (act-order: refused when a
                                    // planned tensor has a ggml type, whose blocks need the column order)
    bool staticGroups = false;
    double percDamp = 0.01;
    int blockSize = 128;
    unsigned threads = 0;
};

struct GptqTensorResult {
    std::string tensor;
    std::string format;
    uint32_t layer = 0;
    GptqResult result;
};

struct GptqModelResult {
    uint32_t ctx = 0;
    uint32_t sequences = 0;
    size_t tokens = 0; // calibration tokens used (sequences x ctx)
    std::vector<GptqTensorResult> tensors; // in quantization order
    double seconds = 0;
};

// Throws qs::Error(BadValue) for a missing model, a text shorter than one sequence or a context longer than
// the model's maximum, act-order with a ggml type in the plan, qs::Error(Unsupported) for an architecture the forward pass does not run, and
// CancelledError on cancel (checked between tensors and inside GPTQ's column sweep).
GptqModelResult gptqQuantizeModel(const GptqModelParams& params, JobControl* job = nullptr);

// The codes, scales, zeros and g_idx of every quantized tensor, for the checkpoint writers
// (core/io/checkpointwriter.h: writeGptqCheckpoint, writeCompressedTensors) and the quantize job.
// Tensors quantized into ggml blocks are left out (see precomputedGgml).
std::shared_ptr<const PrecomputedCodes> precomputedCodes(const GptqModelResult& result);

// GPTQ's ggml blocks of one tensor: exactly its GGUF tensor data (rows x blocks).
struct PrecomputedGgmlBlocks {
    DType type = DType::F32;
    uint64_t rows = 0, cols = 0;
    std::vector<uint8_t> bytes;
};
using PrecomputedGgml = std::map<std::string, std::shared_ptr<const PrecomputedGgmlBlocks>>;
// The ggml blocks of every tensor GPTQ quantized into a ggml type, for the quantize job's GGUF writer.
std::shared_ptr<const PrecomputedGgml> precomputedGgml(const GptqModelResult& result);

class GptqModelJob final : public BasicJob<GptqModelParams, GptqModelResult> {
public:
    explicit GptqModelJob(GptqModelParams params);

protected:
    void execute(JobControl& control) override;
};

} // namespace qs
