#pragma once
// The quantize job: a model and a plan in, quantized files out.
//
// The job streams tensor by tensor from the memory-mapped input (peak memory is a bounded batch of one
// tensor's output plus one row group of floats per worker, never the model), splits the rows of each
// tensor across the thread pool, reports progress in bytes of tensor data and polls for cancel between
// row groups. Output is atomic: AtomicFile (AtomicFileSet for a split output), so a failed or cancelled
// run leaves no partial file and never touches an existing file of the same name.
//
// GGUF target (from GGUF input): the output is byte-identical to llama.cpp's llama-quantize for the same
// per-tensor types and importance file: KV pairs copied in order (general.file_type and
// general.quantization_version moved to the end as llama-quantize does, split.* dropped, the
// quantize.imatrix.* keys appended when an importance file is used), llama-quantize's tensor order
// (tensors outside blocks by name, then blocks by number and name), alignment and zero padding kept.
// See docs/quantize.md.

#include "core/infer/awqmodel.h"
#include "core/infer/gptqmodel.h"
#include "core/io/checkpointwriter.h"
#include "core/plan/plan.h"
#include "core/quant/method.h"
#include "core/quant/tensorreport.h"
#include "core/util/job.h"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qs {

class Model;
struct TensorInfo;

enum class QuantizeTarget : uint8_t { Gguf, CompressedTensors, Gptq, FakeQuant };
// "gguf", "compressed-tensors", "gptq", "fake-quant"
const char* quantizeTargetName(QuantizeTarget target);
std::optional<QuantizeTarget> quantizeTargetFromName(std::string_view name);

struct QuantizeParams {
    std::shared_ptr<const Model> model;
    Plan plan;
    QuantizeTarget target = QuantizeTarget::Gguf;
    std::filesystem::path output;
    std::filesystem::path importanceFile; // empty: no importance matrix
    unsigned threads = 0;                 // 0: resolveThreads() default
    uint64_t splitMaxBytes = 0;           // 0: one file; else shards of at most this much tensor data
    bool allowRequantize = false;         // re-quantize tensors that are already quantized (with a warning)
    // GPTQ: integer codes to write instead of round to nearest (gptqmodel.h precomputedCodes()), for the
    // compressed-tensors and GPTQ targets, and as their dequantized values for fake-quant; GGUF refuses them
    // (integer grids are not ggml blocks).
    std::shared_ptr<const PrecomputedCodes> precomputedCodes;
    // GPTQ into ggml types (gptqmodel.h precomputedGgml()): the GGUF target writes these blocks instead of
    // quantizing the tensor (each entry must match the tensor's planned type and shape).
    std::shared_ptr<const PrecomputedGgml> precomputedGgml;
    // Rounding method. AWQ runs a calibration pre-pass (core/infer/awqmodel.h) on calibrationFile and then
    // writes the transformed weights (scaled and clipped linears, divided norms / previous layers) through
    // the same writers (an overlay model, core/model/overlay.h), so it works for every target. GPTQ runs
    // before the job (GptqModelJob, core/infer/gptqmodel.h) and arrives as precomputedCodes.
    QuantMethod method = QuantMethod::Rtn;
    std::filesystem::path calibrationFile; // UTF-8 text; required by awq
    uint32_t calibrationChunks = 8;        // calibration sequences (0: every whole chunk of the text)
    uint32_t calibrationCtx = 0;           // tokens per sequence; 0: min(512, the model's context)
    std::vector<int32_t> calibrationTokens; // already tokenized calibration text, used when the file is empty
    // GPTQ from stored Hessians (`calibrate --out F.h5 --hessians`) instead of a calibration pass: no
    // sequential update (GptqModelParams::hessians).
    std::filesystem::path gptqHessiansFile;
};

struct QuantizeResult {
    uint64_t bytesWritten = 0;         // every byte of every output file (headers and padding included)
    uint64_t predictedWeightBytes = 0; // the prediction: sum of predictedTensorBytes() over the tensors
    uint64_t weightBytesWritten = 0;   // tensor data actually written (no padding): equals the prediction
    double seconds = 0;
    std::vector<std::filesystem::path> files;
    std::vector<std::string> warnings;
    // method awq: the per-group report (layer, group, alpha, output errors) and where folding or clipping
    // was not possible.
    std::vector<std::string> methodNotes;
    std::vector<AwqGroupReport> awqGroups; // method awq: one entry per layer group AWQ searched
    // One entry per tensor of the model, in the model's order (tensorreport.h: bytes and sampled SQNR).
    std::vector<QuantizedTensor> tensors;
};

struct QuantizeProblem {
    std::string tensor; // empty when the problem is not about one tensor (output path, disk space)
    std::string reason;
    std::string toString() const;
};

// Everything that would make the job fail before it writes its first byte: planned tensors that do not
// exist, formats that cannot store their tensor or that the target cannot write, quantized input without
// allowRequantize, an importance entry of the wrong length, not enough free disk for the predicted size,
// an output path that is (or whose shards are) an input file. Empty when the job can run.
std::vector<QuantizeProblem> validateQuantize(const QuantizeParams& params);

// Why `target` cannot express this plan for this model, independent of the output path and the disk:
// GGUF needs a GGUF model and ggml formats; the checkpoint targets need a safetensors model and formats
// they have a layout for (checkpointProblems). Already-quantized GGUF input counts as a problem unless
// allowRequantize. Empty when the target can write the plan.
std::vector<std::string> quantizeTargetProblems(QuantizeTarget target, const Model& model, const Plan& plan,
                                                bool allowRequantize = false);

// The tensor data `target` writes for one tensor under the plan, exact to the byte. GGUF and GPTQ: the
// plan's plannedBytes (ggml blocks; GPTQ's qweight / qzeros / F16 scales / g_idx). compressed-tensors:
// weight_packed + F32 weight_scale (+ weight_zero_point when asymmetric) + weight_shape, no g_idx.
// fake-quant: the tensor's own stored size (values are replaced, the dtype is kept). Float formats: the
// converted size. Unplanned tensors: their stored size.
uint64_t predictedTensorBytes(QuantizeTarget target, const Plan& plan, const TensorInfo& tensor);

// The file names of a split output, as llama.cpp names them: "<output without .gguf>-00001-of-00003.gguf"
// (index is 0-based, the name 1-based).
std::filesystem::path ggufSplitPath(const std::filesystem::path& output, uint32_t index, uint32_t count);

// llama.cpp's general.file_type for a plan: from its llama.cpp preset (Q4_K_M = 15 ...), else the
// "mostly" type of its largest share of weights.
uint32_t ggufFileType(const Plan& plan, const Model& model);

// The plan of the GPTQ calibration pass for these params (the tensors of the GPTQ tiers, or the whole plan
// with --method gptq): for a checkpoint target the ggml-typed tensors are left out (their GPTQ blocks could
// only be written to GGUF; they are rounded to nearest), with a note in *notes.
Plan gptqPassPlan(const QuantizeParams& params, std::vector<std::string>* notes = nullptr);

class QuantizeJob : public BasicJob<QuantizeParams, QuantizeResult> {
public:
    explicit QuantizeJob(QuantizeParams params);

protected:
    void execute(JobControl& control) override;
};

} // namespace qs
