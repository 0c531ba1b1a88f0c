#pragma once
// Streaming safetensors writer: one or several shards written tensor by tensor into an AtomicFileSet, so
// that a checkpoint appears whole or not at all once the caller commits the set (together with its
// config.json and other files). Each header is the JSON object the format defines (dtype, shape,
// data_offsets, __metadata__) padded with spaces to a multiple of 8 bytes, so the data region starts
// 8-byte aligned. With more than one shard, model.safetensors.index.json (weight_map and
// metadata.total_size) is added to the set as well.

#include "core/model/dtype.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace qs {

class AtomicFileSet;
class JobControl;

struct SafetensorsTensorSpec {
    std::string name;
    DType dtype = DType::F32; // a plain type (F32, BF16, F16, F8_E4M3, I32, I64, ...)
    std::vector<uint64_t> shape;
    uint32_t shard = 0; // index into the shard file names
};

// Appends bytes of the tensor being produced.
using TensorSink = std::function<void(const void* data, size_t size)>;
// Produces tensor `index` of the spec list by calling `sink` as often as it likes; the total must equal the
// tensor's size exactly (checked).
using TensorProducer = std::function<void(size_t index, const TensorSink& sink)>;

struct SafetensorsWriteResult {
    uint64_t bytesWritten = 0;       // every byte of every file added, headers and index included
    uint64_t tensorBytesWritten = 0; // data regions only
    std::vector<std::filesystem::path> files;
};

// Exact bytes of one tensor; throws qs::Error(Overflow / BadValue) naming the tensor.
uint64_t safetensorsTensorBytes(const SafetensorsTensorSpec& spec);
// The safetensors name of a dtype ("F32", "BF16", "F8_E4M3", "I32", "BOOL"); throws for ggml block types.
const char* safetensorsDTypeName(DType type);

// Writes the shards `shardNames` (file names inside `folder`) into `files` (not committed). Tensors are
// written in spec order within each shard. Progress is reported in tensor bytes against the total; the job
// is polled for cancellation between tensors and every few MB.
SafetensorsWriteResult writeSafetensors(AtomicFileSet& files, const std::filesystem::path& folder,
                                        const std::vector<std::string>& shardNames,
                                        const std::vector<SafetensorsTensorSpec>& specs,
                                        const std::map<std::string, std::string>& metadata,
                                        const TensorProducer& produce, JobControl* job);

} // namespace qs
