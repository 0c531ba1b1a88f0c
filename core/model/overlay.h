#pragma once
// A model with some tensors replaced by new float values: the way a weight transform that keeps the model's
// function (AWQ's scales folded into the norms) reaches every writer without the writers knowing about it.

#include "core/model/model.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace qs {

// A copy of `base` in which each named tensor holds the given values (rows x cols row-major, as many as the
// tensor has elements), stored in the tensor's own dtype when that is F16 or BF16, else F32; every other
// tensor, the metadata, the configuration and the path stay those of base (base's files stay mapped). The
// new values live in unlinked, memory-mapped temporary files (one per input shard, Model::fileShard tells
// the checkpoint writers which shard they belong to), so they cost page cache, not heap. Throws
// qs::Error(BadValue) for an unknown tensor or a wrong value count, qs::Error(Io) when the temporary file
// cannot be written.
std::shared_ptr<const Model> modelWithTensors(const Model& base,
                                              const std::map<std::string, std::vector<float>>& replacements);

} // namespace qs
