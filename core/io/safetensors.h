#pragma once
#include "core/model/model.h"

namespace qs {
class JobControl;
// Opens safetensors weights without reading tensor data: only the JSON headers are parsed, the files are
// memory-mapped and tensors are views into the maps (a 140 GB checkpoint opens in milliseconds).
// `path` may be
// - a single .safetensors file;
// - a folder (model.safetensors.index.json, another *.safetensors.index.json, model.safetensors, or
//   every *.safetensors in it);
// - a *.safetensors.index.json file;
// - one shard (name-00001-of-00004.safetensors): the whole checkpoint it belongs to is opened.
// Every header is validated against the file before anything is trusted (UTF-8, JSON object, no
// duplicate names, known dtypes, checked shape arithmetic, data offsets that tile the data region exactly);
// shard indexes may not point outside their folder. Failures throw qs::FormatError naming the file, the
// tensor or key, and the byte offset (8 + position in the header for header fields). Dtypes the format
// defines but the model cannot hold (F8_E8M0, F4, F6_*, C64) throw ErrorCode::Unsupported naming the tensor.
// Progress is reported per shard; cancellation throws qs::CancelledError.
// config.json beside the weights fills ModelConfig; if it cannot be read the weights still open and the
// reason is stored in metadata()["config_error"]. Without a usable config.json, the block count, hidden size,
// vocabulary and tied head are inferred from the tensors (architecture and heads stay unknown).
std::shared_ptr<Model> loadSafetensors(const std::filesystem::path& path, JobControl* job);
} // namespace qs
