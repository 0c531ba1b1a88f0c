#include "core/quant/imatrix.h"

#include "core/infer/activationstats.h"

#include "core/model/mappedfile.h"
#include "core/model/model.h"
#include "core/quant/sensitivity.h"
#include "core/util/checked.h"
#include "core/util/error.h"
#include "core/util/job.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

namespace qs {

std::span<const float> ImportanceEntry::matrix(uint64_t index) const
{
    if (index >= matrices || values.size() != matrices * columns)
        return {};
    return {values.data() + index * columns, static_cast<size_t>(columns)};
}

namespace {

// ---- legacy .dat ----

class Reader {
public:
    Reader(std::span<const std::byte> data, const std::string& file) : m_data(data), m_file(file) {}
    uint64_t offset() const { return m_offset; }
    uint64_t left() const { return m_data.size() - m_offset; }
    int32_t i32(const char* field)
    {
        need(4, field);
        int32_t v;
        std::memcpy(&v, m_data.data() + m_offset, 4);
        m_offset += 4;
        return v;
    }
    const std::byte* take(uint64_t n, const std::string& field)
    {
        need(n, field);
        const std::byte* p = m_data.data() + m_offset;
        m_offset += n;
        return p;
    }
    [[noreturn]] void fail(ErrorCode code, const std::string& field, uint64_t at,
                           const std::string& msg) const
    {
        throw FormatError(code, m_file, field, at, msg);
    }

private:
    void need(uint64_t n, const std::string& field) const
    {
        if (n > left())
            fail(ErrorCode::Truncated, field, m_offset,
                 "needs " + std::to_string(n) + " bytes, " + std::to_string(left()) + " left");
    }
    std::span<const std::byte> m_data;
    std::string m_file;
    uint64_t m_offset = 0;
};

void checkValues(const std::vector<float>& v, const std::string& file, const std::string& field, uint64_t at)
{
    for (size_t i = 0; i < v.size(); ++i)
        if (!std::isfinite(v[i]) || v[i] < 0)
            throw FormatError(ErrorCode::BadValue, file, field, at + 4 * i,
                              "importance value " + std::to_string(i) + " is negative or not finite");
}

// ---- names ----

bool parseIndex(std::string_view s, uint64_t& out)
{
    if (s.empty() || s.size() > 9)
        return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

// Splits "<stem>.weight" / "<stem>.bias".
bool splitSuffix(std::string_view name, std::string_view& stem, std::string_view& suffix)
{
    for (std::string_view s : {".weight", ".bias"})
        if (name.size() > s.size() && name.substr(name.size() - s.size()) == s) {
            stem = name.substr(0, name.size() - s.size());
            suffix = s;
            return true;
        }
    return false;
}

struct NamePair {
    const char* gguf;
    const char* hf;
};
constexpr NamePair kGlobal[] = {
    {"token_embd", "model.embed_tokens"},
    {"output_norm", "model.norm"},
    {"output", "lm_head"},
};
constexpr NamePair kBlock[] = {
    {"attn_q", "self_attn.q_proj"},
    {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},
    {"attn_output", "self_attn.o_proj"},
    {"ffn_gate", "mlp.gate_proj"},
    {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
    {"attn_norm", "input_layernorm"},
    {"ffn_norm", "post_attention_layernorm"},
    {"ffn_gate_inp", "block_sparse_moe.gate"},
};
// The global name pair whose `side` (gguf or hf) is `stem`.
const NamePair* findGlobal(std::string_view stem, const char* NamePair::*side)
{
    for (const auto& p : kGlobal)
        if (stem == p.*side)
            return &p;
    return nullptr;
}

// Splits "<prefix>N.<leaf>" into index N (a block or an expert) and leaf.
bool splitBlock(std::string_view stem, std::string_view prefix, uint64_t& block, std::string_view& leaf)
{
    if (!stem.starts_with(prefix))
        return false;
    const std::string_view rest = stem.substr(prefix.size());
    const size_t dot = rest.find('.');
    if (dot == std::string_view::npos || !parseIndex(rest.substr(0, dot), block))
        return false;
    leaf = rest.substr(dot + 1);
    return true;
}

struct ExpertName {
    const char* hfPrefix; // after model.layers.N.
    const char* hfLeaf;
    const char* gguf;
};
constexpr ExpertName kExperts[] = {
    {"block_sparse_moe.experts.", "w1", "ffn_gate_exps"}, {"block_sparse_moe.experts.", "w3", "ffn_up_exps"},
    {"block_sparse_moe.experts.", "w2", "ffn_down_exps"}, {"mlp.experts.", "gate_proj", "ffn_gate_exps"},
    {"mlp.experts.", "up_proj", "ffn_up_exps"},           {"mlp.experts.", "down_proj", "ffn_down_exps"},
};

} // namespace

std::optional<std::string> ggufToHfName(std::string_view name)
{
    std::string_view stem, suffix, leaf;
    uint64_t block;
    if (!splitSuffix(name, stem, suffix))
        return std::nullopt;
    if (const NamePair* p = findGlobal(stem, &NamePair::gguf))
        return std::string(p->hf) + std::string(suffix);
    if (!splitBlock(stem, "blk.", block, leaf))
        return std::nullopt;
    for (const auto& p : kBlock)
        if (leaf == p.gguf)
            return "model.layers." + std::to_string(block) + "." + p.hf + std::string(suffix);
    return std::nullopt;
}

std::optional<std::string> hfToGgufName(std::string_view name, uint64_t* expert)
{
    std::string_view stem, suffix, leaf;
    uint64_t block;
    if (!splitSuffix(name, stem, suffix))
        return std::nullopt;
    if (const NamePair* p = findGlobal(stem, &NamePair::hf))
        return std::string(p->gguf) + std::string(suffix);
    if (!splitBlock(stem, "model.layers.", block, leaf))
        return std::nullopt;
    const std::string prefix = "blk." + std::to_string(block) + ".";
    for (const auto& p : kBlock)
        if (leaf == p.hf)
            return prefix + p.gguf + std::string(suffix);
    for (const auto& e : kExperts) {
        uint64_t index;
        std::string_view expertLeaf;
        if (!splitBlock(leaf, e.hfPrefix, index, expertLeaf) || expertLeaf != e.hfLeaf)
            continue;
        if (expert)
            *expert = index;
        return prefix + e.gguf + std::string(suffix);
    }
    return std::nullopt;
}

ImportanceMatrix ImportanceMatrix::parseLegacy(std::span<const std::byte> data, const std::string& file)
{
    ImportanceMatrix m;
    m.m_format = ImportanceFileFormat::LegacyDat;
    Reader r(data, file);
    const int32_t n = r.i32("n_entries");
    // The smallest entry is 17 bytes (1-byte name, ncall, nval, one value).
    if (n < 1 || static_cast<uint64_t>(n) > r.left() / 17)
        r.fail(ErrorCode::BadValue, "n_entries", 0, std::to_string(n) + " entries cannot fit the file");
    std::set<std::string, std::less<>> seen;
    for (int32_t i = 0; i < n; ++i) {
        const std::string label = "entry " + std::to_string(i);
        const uint64_t lenAt = r.offset();
        const int32_t len = r.i32((label + " name length").c_str());
        if (len < 1 || static_cast<uint64_t>(len) > r.left())
            r.fail(ErrorCode::BadValue, label + " name length", lenAt, "length " + std::to_string(len));
        ImportanceEntry e;
        e.name.assign(reinterpret_cast<const char*>(r.take(static_cast<uint64_t>(len), label + " name")),
                      static_cast<size_t>(len));
        if (e.name.find('\0') != std::string::npos)
            r.fail(ErrorCode::BadValue, label + " name", lenAt + 4, "name contains a NUL byte");
        if (!seen.insert(e.name).second)
            r.fail(ErrorCode::BadValue, label + " name", lenAt + 4, "duplicate entry '" + e.name + "'");
        const uint64_t ncallAt = r.offset();
        const int32_t ncall = r.i32((e.name + " ncall").c_str());
        if (ncall < 0)
            r.fail(ErrorCode::BadValue, e.name + " ncall", ncallAt,
                   "call count " + std::to_string(ncall) + " is negative");
        const uint64_t nvalAt = r.offset();
        const int32_t nval = r.i32((e.name + " nval").c_str());
        if (nval < 1 || static_cast<uint64_t>(nval) > r.left() / 4)
            r.fail(ErrorCode::BadValue, e.name + " nval", nvalAt,
                   std::to_string(nval) + " values cannot fit the file");
        const uint64_t valuesAt = r.offset();
        e.values.resize(static_cast<size_t>(nval));
        std::memcpy(e.values.data(), r.take(static_cast<uint64_t>(nval) * 4, e.name + " values"),
                    static_cast<size_t>(nval) * 4);
        checkValues(e.values, file, e.name + " values", valuesAt);
        if (ncall > 0)
            for (float& v : e.values)
                v /= static_cast<float>(ncall);
        e.columns = static_cast<uint64_t>(nval);
        e.counts = {static_cast<float>(ncall)};
        m.m_entries.push_back(std::move(e));
    }
    // Optional trailer (newer legacy files): last_call and the dataset name.
    if (r.left() > 0) {
        m.m_chunkCount = static_cast<uint64_t>(std::max(0, r.i32("last_call")));
        const uint64_t lenAt = r.offset();
        const int32_t len = r.i32("dataset name length");
        if (len < 0 || static_cast<uint64_t>(len) > r.left())
            r.fail(ErrorCode::BadValue, "dataset name length", lenAt, "length " + std::to_string(len));
        m.m_datasets.emplace_back(
            reinterpret_cast<const char*>(r.take(static_cast<uint64_t>(len), "dataset name")),
            static_cast<size_t>(len));
        if (r.left() > 0)
            r.fail(ErrorCode::BadValue, "end of file", r.offset(),
                   std::to_string(r.left()) + " unexpected bytes after the dataset name");
    }
    return m;
}

ImportanceMatrix ImportanceMatrix::fromEntries(std::vector<ImportanceEntry> entries,
                                               std::vector<std::string> datasets, uint64_t chunkCount)
{
    ImportanceMatrix m;
    m.m_format = ImportanceFileFormat::Gguf;
    m.m_entries = std::move(entries);
    m.m_datasets = std::move(datasets);
    m.m_chunkCount = chunkCount;
    return m;
}

ImportanceMatrix ImportanceMatrix::fromGgufModel(const Model& model)
{
    ImportanceMatrix m;
    m.m_format = ImportanceFileFormat::Gguf;
    const std::string file = model.path().string();
    std::map<std::string, std::pair<const TensorInfo*, const TensorInfo*>> pairs;
    for (const auto& t : model.tensors()) {
        if (t.name.ends_with(".in_sum2"))
            pairs[t.name.substr(0, t.name.size() - 8)].first = &t;
        else if (t.name.ends_with(".counts"))
            pairs[t.name.substr(0, t.name.size() - 7)].second = &t;
    }
    for (const auto& [name, p] : pairs) {
        const TensorInfo* sums = p.first;
        const TensorInfo* counts = p.second;
        if (!sums || !counts)
            throw FormatError(ErrorCode::BadValue, file, name + (sums ? ".counts" : ".in_sum2"),
                              (sums ? sums : counts)->offset, "the matching tensor is missing");
        if (sums->dtype != DType::F32 || counts->dtype != DType::F32)
            throw FormatError(ErrorCode::BadValue, file, name, sums->offset,
                              "in_sum2 and counts must be F32");
        if (sums->shape.empty() || sums->shape.size() > 2)
            throw FormatError(ErrorCode::BadValue, file, name + ".in_sum2", sums->offset,
                              "expected 1 or 2 dimensions");
        ImportanceEntry e;
        e.name = name;
        e.columns = sums->shape.back();
        e.matrices = sums->shape.size() == 2 ? sums->shape[0] : 1;
        if (e.columns == 0 || e.matrices == 0 || counts->elements() != e.matrices)
            throw FormatError(ErrorCode::BadValue, file, name + ".counts", counts->offset,
                              "holds " + std::to_string(counts->elements()) + " counts for " +
                                  std::to_string(e.matrices) + " matrices");
        e.values.resize(sums->elements());
        e.counts.resize(counts->elements());
        model.decode(*sums, 0, e.values.size(), e.values.data());
        model.decode(*counts, 0, e.counts.size(), e.counts.data());
        checkValues(e.values, file, name + ".in_sum2", sums->offset);
        for (uint64_t k = 0; k < e.matrices; ++k) {
            const float c = e.counts[k];
            if (!std::isfinite(c))
                throw FormatError(ErrorCode::BadValue, file, name + ".counts", counts->offset + 4 * k,
                                  "count is not finite");
            float* v = e.values.data() + k * e.columns;
            for (uint64_t j = 0; j < e.columns; ++j)
                v[j] = c > 0 ? v[j] / c : 1.0f; // no calibration input reached this matrix
        }
        m.m_entries.push_back(std::move(e));
    }
    if (m.m_entries.empty())
        throw FormatError(ErrorCode::BadValue, file, "tensors", std::nullopt,
                          "no <name>.in_sum2 / <name>.counts tensors: not an imatrix file");
    const auto& meta = model.metadata();
    if (auto it = meta.find("imatrix.datasets"); it != meta.end()) {
        if (const auto* arr = std::get_if<MetaArray>(&it->second.value))
            for (const auto& item : *arr)
                if (const auto* s = std::get_if<std::string>(&item.value))
                    m.m_datasets.push_back(*s);
    }
    if (auto it = meta.find("imatrix.chunk_count"); it != meta.end()) {
        if (const auto* u = std::get_if<uint64_t>(&it->second.value))
            m.m_chunkCount = *u;
        else if (const auto* i = std::get_if<int64_t>(&it->second.value))
            m.m_chunkCount = *i > 0 ? static_cast<uint64_t>(*i) : 0;
    }
    return m;
}

ImportanceMatrix ImportanceMatrix::load(const std::filesystem::path& path, JobControl* job)
{
    auto file = MappedFile::open(path);
    const auto bytes = file->bytes();
    if (bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0)
        return fromGgufModel(*openModel(path, job));
    if (bytes.size() >= 8 && std::memcmp(bytes.data(), "\x89HDF\r\n\x1a\n", 8) == 0) {
        file.reset();
        const ActivationStats stats = loadActivationStats(path, /*withHessians=*/false, job);
        ImportanceMatrix m = stats.importance(path.filename().string());
        m.m_format = ImportanceFileFormat::ActivationStats;
        return m;
    }
    checkCancel(job);
    return parseLegacy(bytes, path.string());
}

const ImportanceEntry* ImportanceMatrix::find(std::string_view tensorName, uint64_t* matrixIndex) const
{
    auto lookup = [&](std::string_view n) -> const ImportanceEntry* {
        for (const auto& e : m_entries)
            if (e.name == n)
                return &e;
        return nullptr;
    };
    if (matrixIndex)
        *matrixIndex = 0;
    if (const auto* e = lookup(tensorName))
        return e;
    uint64_t expert = 0;
    if (auto g = hfToGgufName(tensorName, &expert)) {
        if (const auto* e = lookup(*g)) {
            if (matrixIndex)
                *matrixIndex = expert;
            return e;
        }
    }
    if (auto h = ggufToHfName(tensorName))
        return lookup(*h);
    return nullptr;
}

std::span<const float> ImportanceMatrix::importanceFor(std::string_view tensorName, uint64_t columns) const
{
    uint64_t index = 0;
    const ImportanceEntry* e = find(tensorName, &index);
    if (!e || e->columns != columns)
        return {};
    return e->matrix(index);
}

ImportanceCoverage matchImportance(const ImportanceMatrix& importance, const Model& model)
{
    ImportanceCoverage c;
    std::set<const ImportanceEntry*> used;
    for (const auto& t : model.tensors()) {
        uint64_t index = 0;
        const ImportanceEntry* e = importance.find(t.name, &index);
        if (e)
            used.insert(e);
        if (!isSensitivityCandidate(t))
            continue;
        if (!e)
            c.missing.push_back(t.name);
        else if (e->columns != t.columns() || index >= e->matrices)
            c.mismatched.push_back(t.name);
        else
            c.matched.push_back({t.name, e->name, index});
    }
    for (const auto& e : importance.entries())
        if (!used.count(&e))
            c.unused.push_back(e.name);
    return c;
}

} // namespace qs
