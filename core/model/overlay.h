#pragma once
// A model with some tensors replaced by new float values: the way a weight transform that keeps the model's
// function (AWQ's scales folded into the norms) reaches every writer without the writers knowing about it.

#include "core/model/model.h"

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace qs {

// Collects replacement tensors one at a time, so that a transform of a large model holds at most one
// tensor's new values in memory. Each replacement is written at once, stored in the tensor's own dtype when
// that is F16 or BF16, else F32, to an unlinked temporary file (one per input shard, so that
// Model::fileShard tells the checkpoint writers which shard each tensor belongs to); nothing is left on
// disk, even after a crash, and the data costs page cache, not heap. finish() maps those files into a
// copy of `base` in which the replaced tensors point at them; every other tensor, the metadata, the
// configuration and the path stay those of base (base's files stay mapped). `base` must outlive the
// builder.
class OverlayBuilder {
public:
    explicit OverlayBuilder(const Model& base);
    ~OverlayBuilder();
    OverlayBuilder(const OverlayBuilder&) = delete;
    OverlayBuilder& operator=(const OverlayBuilder&) = delete;

    // `values`: rows x cols row-major, as many as the tensor has elements. Throws qs::Error(BadValue) for an
    // unknown tensor, a wrong value count or a tensor replaced twice, qs::Error(Io) when the temporary file
    // cannot be written.
    void replace(const std::string& name, const std::vector<float>& values);
    bool contains(const std::string& name) const { return m_placed.count(name) > 0; }
    size_t count() const { return m_placed.size(); }
    // The model with every replacement so far; the builder is then empty (call once).
    std::shared_ptr<const Model> finish();

private:
    struct Placed {
        uint32_t shard = 0;
        uint64_t offset = 0;
        DType type = DType::F32;
        uint64_t bytes = 0;
    };
    struct Spill {
        int fd = -1;
        std::string name; // for messages: the file's name before it was unlinked
        uint64_t size = 0;
    };
    const Model& m_base;
    std::map<std::string, Placed> m_placed;
    std::map<uint32_t, Spill> m_spills; // input shard -> its temporary file
};

// The same in one call: a copy of `base` in which each named tensor holds the given values.
std::shared_ptr<const Model> modelWithTensors(const Model& base,
                                              const std::map<std::string, std::vector<float>>& replacements);

} // namespace qs
