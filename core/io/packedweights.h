#pragma once
// Quantized checkpoints read natively (docs/checkpoints.md): the stored parts of a quantized weight become
// one logical tensor of dtype DType::Packed whose TensorInfo::packed names its scheme and decodes it.
// - GPTQ (AutoGPTQ / GPTQModel v1): P.qweight, P.qzeros, P.scales[, P.g_idx] -> P.weight;
// - compressed-tensors pack-quantized: P.weight_packed, P.weight_scale, P.weight_shape
//   [, P.weight_zero_point] -> P.weight;
// - FP8 (compressed-tensors float-quantized and the same layout elsewhere): P.weight in F8_E4M3 / F8_E5M2
//   with P.weight_scale -> P.weight.
// Every part's dtype and shape is checked against the others (checked arithmetic) before anything is
// trusted; an inconsistent group throws qs::FormatError naming the file, the tensor and the header offset.

#include "core/model/mappedfile.h"
#include "core/model/model.h"

#include <memory>
#include <string>
#include <vector>

namespace qs {

struct StoredTensor {
    TensorInfo info;
    std::string file;         // for error messages
    uint64_t fieldOffset = 0; // header offset of the tensor's entry
};

// Replaces the parts of every quantized weight by one logical tensor (at the position of its main part).
// `files` are the model's files, indexed by TensorInfo::fileIndex.
void groupPackedWeights(std::vector<StoredTensor>& tensors,
                        const std::vector<std::shared_ptr<MappedFile>>& files);

} // namespace qs
