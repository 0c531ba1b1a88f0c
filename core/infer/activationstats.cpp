#include "core/infer/activationstats.h"

#include "core/io/hdf5.h"
#include "core/io/hdf5handle.h"
#include "core/model/model.h"
#include "core/quant/imatrix.h"
#include "core/util/atomicfile.h"
#include "core/util/error.h"
#include "core/util/job.h"
#include "core/util/threadpool.h"

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

namespace qs {

namespace {

constexpr int32_t kSchemaVersion = 1;
constexpr const char* kVersionDataset = "quantscope_activation_stats";
constexpr char kJoin = '+';
constexpr uint64_t kMaxHessianColumns = 65536;
constexpr uint64_t kMaxHessianBytes = 48ull << 30;

std::string groupName(const std::vector<std::string>& tensors)
{
    std::string name;
    for (const std::string& t : tensors) {
        if (t.empty() || t.find('/') != std::string::npos || t.find(kJoin) != std::string::npos || t == ".")
            throw Error(ErrorCode::BadValue,
                        "tensor name '" + t + "' cannot name an activation statistics group ('/' or '+')");
        if (!name.empty())
            name += kJoin;
        name += t;
    }
    return name;
}

} // namespace

// ---------------------------------------------------------------------------------------------------------
// ActivationStats

const InputActivations* ActivationStats::find(std::string_view tensor) const
{
    for (const InputActivations& in : inputs)
        if (std::find(in.tensors.begin(), in.tensors.end(), tensor) != in.tensors.end())
            return &in;
    return nullptr;
}

bool ActivationStats::hasHessians() const
{
    return !inputs.empty() && std::all_of(inputs.begin(), inputs.end(),
                                          [](const InputActivations& in) { return !in.xtx.empty(); });
}

ImportanceMatrix ActivationStats::importance(const std::string& dataset) const
{
    return ImportanceMatrix::fromEntries(importanceEntries(), {dataset}, chunks);
}

std::vector<ImportanceEntry> ActivationStats::importanceEntries() const
{
    std::vector<ImportanceEntry> entries;
    for (const InputActivations& in : inputs)
        for (const std::string& t : in.tensors) {
            ImportanceEntry e;
            e.name = t;
            e.columns = in.columns();
            e.values = in.meanSq;
            e.counts = {static_cast<float>(in.count)};
            entries.push_back(std::move(e));
        }
    std::sort(entries.begin(), entries.end(),
              [](const ImportanceEntry& a, const ImportanceEntry& b) { return a.name < b.name; });
    return entries;
}

// ---------------------------------------------------------------------------------------------------------
// ActivationAccumulator

struct ActivationAccumulator::Open {
    std::vector<std::string> tensors;
    uint64_t lastPass = 0;
    uint64_t count = 0;
    std::vector<double> sumSq, sumAbs;
    std::vector<float> maxAbs;
    Eigen::MatrixXf xtx; // lower triangle kept up to date
};

void ActivationAccumulator::beginPass()
{
    ++m_pass;
}

void ActivationAccumulator::add(const std::string& key, const std::string& tensor, const float* x, int64_t cols,
                                int64_t tokens)
{
    auto it = std::find_if(m_open.begin(), m_open.end(), [&](const auto& p) { return p.first == key; });
    if (it == m_open.end()) {
        auto open = std::make_shared<Open>();
        open->sumSq.assign(size_t(cols), 0.0);
        open->sumAbs.assign(size_t(cols), 0.0);
        open->maxAbs.assign(size_t(cols), 0.0f);
        if (m_hessians)
            open->xtx = Eigen::MatrixXf::Zero(cols, cols);
        m_open.emplace_back(key, std::move(open));
        it = std::prev(m_open.end());
    }
    Open& o = *it->second;
    if (std::find(o.tensors.begin(), o.tensors.end(), tensor) == o.tensors.end())
        o.tensors.push_back(tensor);
    if (int64_t(o.sumSq.size()) != cols)
        throw Error(ErrorCode::Internal, "activation statistics: input '" + key + "' changed its width");
    if (o.lastPass == m_pass && m_pass != 0)
        return; // another reader of the same input in this pass (k and v after q)
    o.lastPass = m_pass;
    for (int64_t t = 0; t < tokens; ++t) {
        const float* col = x + t * cols;
        for (int64_t j = 0; j < cols; ++j) {
            const float v = col[j];
            o.sumSq[size_t(j)] += double(v) * double(v);
            o.sumAbs[size_t(j)] += std::fabs(double(v));
            o.maxAbs[size_t(j)] = std::max(o.maxAbs[size_t(j)], std::fabs(v));
        }
    }
    o.count += uint64_t(tokens);
    if (m_hessians && tokens > 0) {
        // The lower triangle of X Xᵀ in column panels on the workers: panel [j0, j1) is the trapezoid
        // rows j0.. x columns j0..j1-1, so every element is written by one worker.
        const Eigen::Map<const Eigen::MatrixXf> X(x, cols, tokens);
        const unsigned workers = std::min<unsigned>(resolveThreads(m_threads), unsigned(std::max<int64_t>(1, cols / 128)));
        if (workers <= 1) {
            o.xtx.selfadjointView<Eigen::Lower>().rankUpdate(X);
        } else {
            const int64_t panel = 64;
            std::atomic<int64_t> next{0};
            ThreadPool::instance().runWorkers(workers, [&](unsigned) {
                for (;;) {
                    const int64_t j0 = next.fetch_add(panel);
                    if (j0 >= cols)
                        return;
                    const int64_t w = std::min(panel, cols - j0);
                    o.xtx.block(j0, j0, cols - j0, w).noalias() +=
                        X.middleRows(j0, cols - j0) * X.middleRows(j0, w).transpose();
                }
            });
        }
    }
}

std::vector<InputActivations> ActivationAccumulator::take(std::string_view prefix)
{
    std::vector<InputActivations> out;
    auto keep = m_open.begin();
    for (auto it = m_open.begin(); it != m_open.end(); ++it) {
        if (!it->first.starts_with(prefix)) {
            if (keep != it)
                *keep = std::move(*it);
            ++keep;
            continue;
        }
        Open& o = *it->second;
        InputActivations in;
        in.tensors = std::move(o.tensors);
        in.count = double(o.count);
        const double n = o.count > 0 ? double(o.count) : 1.0;
        const size_t cols = o.sumSq.size();
        in.meanSq.resize(cols);
        in.meanAbs.resize(cols);
        for (size_t j = 0; j < cols; ++j) {
            in.meanSq[j] = static_cast<float>(o.sumSq[j] / n);
            in.meanAbs[j] = static_cast<float>(o.sumAbs[j] / n);
        }
        in.maxAbs = std::move(o.maxAbs);
        if (m_hessians) {
            in.xtx.resize(cols * cols);
            const float inv = static_cast<float>(1.0 / n);
            for (size_t r = 0; r < cols; ++r)
                for (size_t c = 0; c <= r; ++c) {
                    const float v = o.xtx(Eigen::Index(r), Eigen::Index(c)) * inv;
                    in.xtx[r * cols + c] = v;
                    in.xtx[c * cols + r] = v;
                }
        }
        out.push_back(std::move(in));
    }
    m_open.erase(keep, m_open.end());
    return out;
}

// ---------------------------------------------------------------------------------------------------------
// Writing

namespace {

[[noreturn]] void writeFailed(const std::filesystem::path& path, const std::string& what)
{
    throw Error(ErrorCode::Io, path.string() + ": cannot write activation statistics (" + what + ")");
}

bool writeDataset(hid_t loc, const char* name, hid_t memType, hid_t fileType, int rank, const hsize_t* dims,
                  const void* data)
{
    Hdf5Handle space(H5Screate_simple(rank, dims, nullptr), H5Sclose);
    if (!space.valid())
        return false;
    Hdf5Handle set(H5Dcreate2(loc, name, fileType, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                   H5Dclose);
    return set.valid() && H5Dwrite(set.get(), memType, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
}

bool writeScalar(hid_t loc, const char* name, double value)
{
    const hsize_t one = 1;
    return writeDataset(loc, name, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 1, &one, &value);
}

bool writeStringAttribute(hid_t loc, const char* name, const std::string& value)
{
    Hdf5Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    if (!type.valid() || H5Tset_size(type.get(), std::max<size_t>(1, value.size())) < 0)
        return false;
    Hdf5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    Hdf5Handle attr(H5Acreate2(loc, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    const std::string stored = value.empty() ? std::string(1, '\0') : value;
    return attr.valid() && H5Awrite(attr.get(), type.get(), stored.data()) >= 0;
}

} // namespace

struct ActivationStatsWriter::Impl {
    std::filesystem::path path, tmp;
    hid_t file = -1;
    hid_t inputs = -1;
    bool committed = false;
    std::set<std::string> written;

    void close()
    {
        std::lock_guard lock(hdf5Mutex());
        if (inputs >= 0)
            H5Gclose(inputs);
        if (file >= 0)
            H5Fclose(file);
        inputs = file = -1;
    }
};

ActivationStatsWriter::ActivationStatsWriter(const std::filesystem::path& path, const std::string& model,
                                             const std::string& dataset)
    : m(std::make_unique<Impl>())
{
    m->path = path;
    m->tmp = temporaryPathBeside(path);
    std::lock_guard lock(hdf5Mutex());
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    m->file = H5Fcreate(m->tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (m->file < 0)
        writeFailed(path, "cannot create " + m->tmp.string());
    const int32_t version = kSchemaVersion;
    const hsize_t one = 1;
    if (!writeDataset(m->file, kVersionDataset, H5T_NATIVE_INT32, H5T_STD_I32LE, 1, &one, &version) ||
        !writeStringAttribute(m->file, "model", model) || !writeStringAttribute(m->file, "dataset", dataset))
        writeFailed(path, "header");
    m->inputs = H5Gcreate2(m->file, "inputs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (m->inputs < 0)
        writeFailed(path, "group /inputs");
}

ActivationStatsWriter::~ActivationStatsWriter()
{
    if (m->committed)
        return;
    m->close();
    std::error_code ec;
    std::filesystem::remove(m->tmp, ec);
}

void ActivationStatsWriter::write(const InputActivations& input)
{
    const std::string name = groupName(input.tensors);
    if (!m->written.insert(name).second)
        writeFailed(m->path, "input '" + name + "' written twice");
    const hsize_t cols = input.columns();
    if (input.meanAbs.size() != cols || input.maxAbs.size() != cols ||
        (!input.xtx.empty() && input.xtx.size() != cols * cols))
        throw Error(ErrorCode::Internal, "activation statistics of '" + name + "' have mismatched lengths");
    std::lock_guard lock(hdf5Mutex());
    Hdf5Handle group(H5Gcreate2(m->inputs, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    if (!group.valid())
        writeFailed(m->path, "group " + name);
    const hid_t g = group.get();
    const hsize_t square[2] = {cols, cols};
    bool ok = writeScalar(g, "count", input.count) &&
              writeDataset(g, "mean_sq", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 1, &cols, input.meanSq.data()) &&
              writeDataset(g, "mean_abs", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 1, &cols, input.meanAbs.data()) &&
              writeDataset(g, "max_abs", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 1, &cols, input.maxAbs.data());
    if (ok && !input.xtx.empty())
        ok = writeDataset(g, "xtx", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, square, input.xtx.data());
    if (!ok)
        writeFailed(m->path, "datasets of " + name);
}

void ActivationStatsWriter::commit(uint32_t ctx, uint32_t chunks, uint64_t tokens)
{
    {
        std::lock_guard lock(hdf5Mutex());
        Hdf5Handle meta(H5Gcreate2(m->file, "meta", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
        if (!meta.valid() || !writeScalar(meta.get(), "ctx", ctx) || !writeScalar(meta.get(), "chunks", chunks) ||
            !writeScalar(meta.get(), "tokens", double(tokens)))
            writeFailed(m->path, "group /meta");
    }
    m->close();
    commitTemporaryFile(m->tmp, m->path); // fsync, rename, fsync the folder; removes tmp on failure
    m->committed = true;
}

void writeActivationStats(const ActivationStats& stats, const std::filesystem::path& path,
                          const std::string& model, const std::string& dataset)
{
    ActivationStatsWriter writer(path, model, dataset);
    for (const InputActivations& in : stats.inputs)
        writer.write(in);
    writer.commit(stats.ctx, stats.chunks, stats.tokens);
}

// ---------------------------------------------------------------------------------------------------------
// Reading

namespace {

struct Reader {
    const Model& model;
    std::string file;

    [[noreturn]] void bad(const std::string& field, const std::string& message) const
    {
        throw FormatError(ErrorCode::BadValue, file, field, std::nullopt, message);
    }

    double scalar(const TensorInfo& t) const
    {
        if (t.elements() != 1 || !dtypeInfo(t.dtype).decodable)
            bad(t.name, "expected one number");
        const auto raw = model.rawData(t);
        double v = 0;
        if (t.dtype == DType::F64 && raw.size() == 8) {
            std::memcpy(&v, raw.data(), 8);
        } else {
            float f = 0;
            model.decode(t, 0, 1, &f);
            v = f;
        }
        if (!std::isfinite(v))
            bad(t.name, "not a finite number");
        return v;
    }

    std::vector<float> vector(const TensorInfo& t, uint64_t expected) const
    {
        if (t.shape.size() != 1 || t.shape[0] != expected)
            bad(t.name, "expected " + std::to_string(expected) + " values");
        std::vector<float> out(expected);
        model.decode(t, 0, expected, out.data());
        for (float v : out)
            if (!std::isfinite(v) || v < 0)
                bad(t.name, "holds a negative or non-finite value");
        return out;
    }
};

} // namespace

ActivationStats loadActivationStats(const std::filesystem::path& path, bool withHessians, JobControl* job)
{
    const std::shared_ptr<Model> model = loadHdf5(path, job);
    return activationStatsFromModel(*model, path.string(), withHessians, job);
}

ActivationStats activationStatsFromModel(const Model& m, const std::string& file, bool withHessians,
                                         JobControl* job)
{
    const Model* model = &m;
    Reader r{m, file};
    const TensorInfo* version = model->find(kVersionDataset);
    if (!version)
        throw FormatError(ErrorCode::BadMagic, file, kVersionDataset, std::nullopt,
                          "not a Quantscope activation statistics file (no /" + std::string(kVersionDataset) +
                              " dataset)");
    const double v = r.scalar(*version);
    if (v != kSchemaVersion)
        throw FormatError(ErrorCode::BadVersion, file, kVersionDataset, std::nullopt,
                          "schema version " + std::to_string(int64_t(v)) + " is not read by this version (1)");

    // inputs/<group>/<field>
    std::map<std::string, std::map<std::string, const TensorInfo*>> groups;
    for (const TensorInfo& t : model->tensors()) {
        if (!t.name.starts_with("inputs/"))
            continue;
        const std::string rest = t.name.substr(7);
        const size_t slash = rest.find('/');
        if (slash == std::string::npos || rest.find('/', slash + 1) != std::string::npos)
            continue; // not ours: ignored, as unknown fields are
        groups[rest.substr(0, slash)][rest.substr(slash + 1)] = &t;
        if (groups.size() > kMaxActivationInputs)
            r.bad("inputs", "more than " + std::to_string(kMaxActivationInputs) + " inputs");
    }
    if (groups.empty())
        r.bad("inputs", "no input statistics");

    ActivationStats stats;
    auto meta = [&](const char* name) -> double {
        const TensorInfo* t = model->find(std::string("meta/") + name);
        if (!t)
            r.bad(std::string("meta/") + name, "missing");
        const double value = r.scalar(*t);
        if (value < 0 || value > 1e15 || value != std::floor(value))
            r.bad(t->name, "not a count");
        return value;
    };
    stats.ctx = static_cast<uint32_t>(std::min(meta("ctx"), double(UINT32_MAX)));
    stats.chunks = static_cast<uint32_t>(std::min(meta("chunks"), double(UINT32_MAX)));
    stats.tokens = static_cast<uint64_t>(meta("tokens"));

    std::set<std::string> seen;
    size_t done = 0;
    uint64_t hessianBytes = 0;
    for (const auto& group : groups) {
        const std::string& name = group.first;
        const auto& fields = group.second; // not a structured binding: clang 14 cannot capture those
        checkCancel(job);
        const std::string field = "inputs/" + name;
        InputActivations in;
        size_t start = 0;
        while (start <= name.size()) {
            const size_t end = std::min(name.find(kJoin, start), name.size());
            const std::string tensor = name.substr(start, end - start);
            if (tensor.empty())
                r.bad(field, "an empty tensor name in the group's name");
            if (!seen.insert(tensor).second)
                r.bad(field, "tensor '" + tensor + "' belongs to two inputs");
            in.tensors.push_back(tensor);
            start = end + 1;
        }
        auto get = [&](const char* f) -> const TensorInfo& {
            auto it = fields.find(f);
            if (it == fields.end())
                r.bad(field + "/" + f, "missing");
            return *it->second;
        };
        const TensorInfo& meanSq = get("mean_sq");
        if (meanSq.shape.size() != 1 || meanSq.shape[0] == 0 || meanSq.shape[0] > kMaxActivationColumns)
            r.bad(meanSq.name, "expected 1 to " + std::to_string(kMaxActivationColumns) + " values");
        const uint64_t cols = meanSq.shape[0];
        in.count = r.scalar(get("count"));
        if (in.count <= 0)
            r.bad(field + "/count", "no tokens");
        in.meanSq = r.vector(meanSq, cols);
        in.meanAbs = r.vector(get("mean_abs"), cols);
        in.maxAbs = r.vector(get("max_abs"), cols);
        if (withHessians) {
            if (auto it = fields.find("xtx"); it != fields.end()) {
                const TensorInfo& t = *it->second;
                if (t.shape != std::vector<uint64_t>{cols, cols})
                    r.bad(t.name, "expected " + std::to_string(cols) + " x " + std::to_string(cols) + " values");
                // Decoded to memory: a cap on each matrix and on all of them (a 65536-wide input is 16 GiB).
                hessianBytes += cols * cols * sizeof(float);
                if (cols > kMaxHessianColumns || hessianBytes > kMaxHessianBytes)
                    r.bad(t.name, "the Hessians would take more than " +
                                      std::to_string(kMaxHessianBytes >> 30) + " GiB of memory (at most " +
                                      std::to_string(kMaxHessianColumns) + " columns each)");
                in.xtx.resize(cols * cols);
                model->decode(t, 0, cols * cols, in.xtx.data());
                for (float x : in.xtx)
                    if (!std::isfinite(x))
                        r.bad(t.name, "holds a non-finite value");
            }
        }
        stats.inputs.push_back(std::move(in));
        reportProgress(job, double(++done) / double(groups.size()), "reading activation statistics");
    }
    return stats;
}

} // namespace qs
