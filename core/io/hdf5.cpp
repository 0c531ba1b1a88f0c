// HDF5 / Keras loading. libhdf5 runs only inside quantscope-h5probe; this side supervises it, parses its
// (untrusted) description, checks every offset against the real file and builds views into the map.
//
// Datasets that are not a plain little-endian byte range in the file (gzip/shuffle/szip-compressed,
// chunked, compact, big-endian, never written) are decoded by the probe into a temporary file that is
// mapped next to the original, because a user analysing weights wants every tensor, not a list of the
// ones we could not read. The temporary file is unlinked as soon as it is mapped (or when loading fails),
// so the cache never grows stale or unbounded; the price is decoding again at the next open. Its size is
// capped at 8 × the file size + 256 MB so that a compression bomb cannot fill the disk.

#include "core/io/hdf5.h"

#include "core/io/hdf5_probe.h"
#include "core/io/hdf5_protocol.h"
#include "core/util/checked.h"
#include "core/util/error.h"
#include "core/util/job.h"

#include <QDir>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryFile>
#include <csignal>
#include <cstring>
#include <fstream>
#include <set>

namespace qs {

namespace {

constexpr size_t kMaxWarnings = 1000;

std::string signalName(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV, segmentation fault";
    case SIGBUS:
        return "SIGBUS, bus error";
    case SIGABRT:
        return "SIGABRT, aborted";
    case SIGFPE:
        return "SIGFPE, arithmetic error";
    case SIGILL:
        return "SIGILL, illegal instruction";
    case SIGKILL:
        return "SIGKILL, killed (out of memory?)";
    case SIGXFSZ:
        return "SIGXFSZ, decoded data too large";
    default:
        return "signal " + std::to_string(sig);
    }
}

// HDF5 looks for its signature at 0, 512, 1024, 2048, ... (a user block may precede it).
bool hasHdf5Signature(const MappedFile& file)
{
    static const char sig[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
    for (uint64_t at = 0; at <= file.size() && file.size() - at >= 8; at = at ? at * 2 : 512)
        if (std::memcmp(file.data() + at, sig, 8) == 0)
            return true;
    return false;
}

std::optional<DType> dtypeFromProtocol(const std::string& t)
{
    static const std::pair<const char*, DType> table[] = {
        {"f16", DType::F16},  {"bf16", DType::BF16}, {"f32", DType::F32}, {"f64", DType::F64},
        {"i8", DType::I8},    {"i16", DType::I16},   {"i32", DType::I32}, {"i64", DType::I64},
        {"u8", DType::U8},    {"u16", DType::U16},   {"u32", DType::U32}, {"u64", DType::U64},
        {"bool", DType::Bool}};
    for (const auto& [name, type] : table)
        if (t == name)
            return type;
    return std::nullopt;
}

// Built by assignment: brace-initialising the variant from a temporary trips GCC 12's -Wmaybe-uninitialized.
template <typename T> MetaValue metaOf(T value)
{
    MetaValue v;
    v.value = std::move(value);
    return v;
}

std::string joinPath(const std::string& group, const std::string& name)
{
    return group == "/" ? "/" + name : group + "/" + name;
}

class Builder {
public:
    Builder(const std::filesystem::path& path, const h5::ProbeOutput& probe, std::shared_ptr<MappedFile> file,
            std::shared_ptr<MappedFile> copy)
        : m_path(path), m_file(path.string()), m_probe(probe), m_main(std::move(file)),
          m_copy(std::move(copy))
    {
        for (size_t i = 0; i < probe.attributes.size(); ++i)
            m_attrs.emplace(std::make_pair(probe.attributes[i].object, probe.attributes[i].name), i);
        for (size_t i = 0; i < probe.datasets.size(); ++i)
            m_datasets.emplace(probe.datasets[i].path, i);
        for (const auto& w : probe.warnings)
            warn(w);
    }

    std::shared_ptr<Model> build()
    {
        const std::string kerasRoot = findKerasRoot();
        auto model =
            std::make_shared<Model>(kerasRoot.empty() ? ModelFormat::Hdf5 : ModelFormat::Keras, m_path);
        m_model = model.get();
        m_model->addFile(m_main);
        if (m_copy)
            m_copyIndex = m_model->addFile(m_copy);
        if (!kerasRoot.empty())
            addKerasTensors(kerasRoot);
        size_t optimizerDatasets = 0;
        for (size_t i = 0; i < m_probe.datasets.size(); ++i) {
            if (m_used.count(i))
                continue;
            const auto& d = m_probe.datasets[i];
            if (!kerasRoot.empty() && d.path.starts_with("/optimizer_weights/")) {
                ++optimizerDatasets;
                continue;
            }
            addTensor(d, d.path.substr(1));
        }
        auto& meta = m_model->mutableMetadata();
        for (const auto& a : m_probe.attributes)
            if (a.object == "/")
                meta[a.name] = metaValue(a);
        meta["hdf5.library"] = metaOf(m_probe.library);
        if (optimizerDatasets)
            meta["keras.optimizer_datasets_ignored"] = metaOf(static_cast<uint64_t>(optimizerDatasets));
        if (!kerasRoot.empty())
            applyKerasConfig(kerasRoot);
        if (!m_warnings.empty()) {
            MetaArray list;
            for (const auto& w : m_warnings)
                list.push_back(metaOf(w));
            if (m_droppedWarnings)
                list.push_back(metaOf(std::string("… and ") + std::to_string(m_droppedWarnings) + " more"));
            meta["hdf5.warnings"] = metaOf(std::move(list));
            for (const auto& w : m_warnings)
                m_model->addWarning(w);
            if (m_droppedWarnings)
                m_model->addWarning("… and " + std::to_string(m_droppedWarnings) + " more HDF5 warnings");
        }
        if (m_model->tensors().empty()) {
            std::string why = m_warnings.empty() ? std::string() : " (" + m_warnings.front() + ")";
            throw FormatError(ErrorCode::Unsupported, m_file, "datasets", std::nullopt,
                              "holds no numeric dataset that can be loaded" + why);
        }
        m_model->finalize();
        return model;
    }

private:
    void warn(const std::string& message)
    {
        if (m_warnings.size() < kMaxWarnings)
            m_warnings.push_back(message);
        else
            ++m_droppedWarnings;
    }

    const h5::Attribute* attr(const std::string& object, const std::string& name) const
    {
        auto it = m_attrs.find(std::make_pair(object, name));
        return it == m_attrs.end() ? nullptr : &m_probe.attributes[it->second];
    }

    // Keras writes a string-list attribute whole, or split into name0, name1, ... when it would exceed
    // the 64 KB object-header limit. Non-string attributes (Keras writes an empty float array for a
    // layer without weights) read as empty.
    std::optional<std::vector<std::string>> stringList(const std::string& object,
                                                       const std::string& name) const
    {
        if (const auto* a = attr(object, name))
            return a->kind == h5::Attribute::Kind::String ? a->strings : std::vector<std::string>{};
        std::optional<std::vector<std::string>> out;
        for (size_t chunk = 0;; ++chunk) {
            const auto* a = attr(object, name + std::to_string(chunk));
            if (!a)
                break;
            if (!out)
                out.emplace();
            if (a->kind == h5::Attribute::Kind::String)
                out->insert(out->end(), a->strings.begin(), a->strings.end());
        }
        return out;
    }

    // Whether the probe saw the group (listed, with an attribute, or holding a dataset).
    bool groupExists(const std::string& group) const
    {
        if (std::find(m_probe.groups.begin(), m_probe.groups.end(), group) != m_probe.groups.end())
            return true;
        for (const auto& a : m_probe.attributes)
            if (a.object == group)
                return true;
        const std::string prefix = group + "/";
        const auto it = m_datasets.lower_bound(prefix);
        return it != m_datasets.end() && it->first.starts_with(prefix);
    }

    std::string findKerasRoot() const
    {
        if (stringList("/model_weights", "layer_names"))
            return "/model_weights";
        if (stringList("/", "layer_names"))
            return "/";
        return {};
    }

    void addKerasTensors(const std::string& root)
    {
        std::set<std::string> seenLayers;
        const std::vector<std::string> layers =
            stringList(root, "layer_names").value_or(std::vector<std::string>{});
        for (const auto& layer : layers) {
            if (!seenLayers.insert(layer).second) {
                warn("Keras layer " + layer + " is listed twice in layer_names");
                continue;
            }
            const std::string group = joinPath(root, layer);
            const auto weights = stringList(group, "weight_names");
            if (!weights) {
                warn(groupExists(group) ? "Keras layer " + layer + " has no weight_names attribute"
                                        : "Keras layer " + layer + " is listed in layer_names but the file has "
                                                                   "no group " + group + "; its weights are missing");
                continue;
            }
            for (const auto& weight : *weights) {
                auto it = m_datasets.find(joinPath(group, weight));
                if (it == m_datasets.end()) {
                    warn("Keras layer " + layer + " lists weight " + weight +
                         " but the file has no dataset " + joinPath(group, weight));
                    continue;
                }
                if (m_used.count(it->second))
                    continue;
                m_used.insert(it->second);
                // Weight names are unique in a well-formed file; keep both when they are not.
                addTensor(m_probe.datasets[it->second],
                          m_names.count(weight) ? layer + "/" + weight : weight);
            }
        }
    }

    void applyKerasConfig(const std::string& root)
    {
        auto& meta = m_model->mutableMetadata();
        auto& cfg = m_model->mutableConfig();
        const auto* configAttr = attr("/", "model_config");
        if (configAttr && configAttr->kind == h5::Attribute::Kind::String &&
            configAttr->strings.size() == 1) {
            const std::string& text = configAttr->strings.front();
            const QJsonDocument doc = QJsonDocument::fromJson(
                QByteArray::fromRawData(text.data(), static_cast<qsizetype>(text.size())));
            if (doc.isObject()) {
                const QJsonObject o = doc.object();
                const std::string cls =
                    o.value(QLatin1StringView("class_name")).toString().left(256).toStdString();
                const std::string name = o.value(QLatin1StringView("config"))
                                             .toObject()
                                             .value(QLatin1StringView("name"))
                                             .toString()
                                             .left(256)
                                             .toStdString();
                if (!cls.empty())
                    meta["keras.class_name"] = metaOf(cls);
                cfg.architecture = !name.empty() ? name : cls;
            } else {
                warn("model_config is not a JSON object");
            }
        }
        if (cfg.architecture.empty())
            cfg.architecture = "keras";
        for (const char* key : {"keras_version", "backend"})
            if (const auto* a = attr(root, key); a && !meta.count(key))
                meta[key] = metaValue(*a);
    }

    static MetaValue metaValue(const h5::Attribute& a)
    {
        if (a.kind == h5::Attribute::Kind::String) {
            if (a.strings.size() == 1)
                return metaOf(a.strings.front());
            MetaArray arr;
            for (const auto& s : a.strings)
                arr.push_back(metaOf(s));
            return metaOf(std::move(arr));
        }
        auto one = [&](double v) {
            return a.kind == h5::Attribute::Kind::Int ? metaOf(static_cast<int64_t>(v)) : metaOf(v);
        };
        if (a.numbers.size() == 1)
            return one(a.numbers.front());
        MetaArray arr;
        for (double v : a.numbers)
            arr.push_back(one(v));
        return metaOf(std::move(arr));
    }

    void addTensor(const h5::Dataset& d, std::string name)
    {
        if (d.storage == h5::Storage::None) {
            warn(d.path + ": " + d.reason);
            return;
        }
        const auto dtype = dtypeFromProtocol(d.type);
        if (!dtype)
            throw FormatError(ErrorCode::BadValue, m_file, "dataset " + d.path + " type", std::nullopt,
                              "unknown element type '" + d.type.substr(0, 32) + "'");
        uint64_t elements = 1;
        for (uint64_t dim : d.shape) {
            const auto next = checkedMul(elements, dim);
            if (!next)
                throw FormatError(ErrorCode::Overflow, m_file, "dataset " + d.path + " shape", std::nullopt,
                                  "element count overflows");
            elements = *next;
        }
        const auto bytes = dtypeByteSize(*dtype, elements);
        if (!bytes || *bytes != d.bytes)
            throw FormatError(ErrorCode::BadValue, m_file, "dataset " + d.path + " size", d.offset,
                              "declares " + std::to_string(d.bytes) + " bytes but its shape and type need " +
                                  (bytes ? std::to_string(*bytes) : std::string("more than 2^64")));
        const bool copied = d.storage == h5::Storage::Copy;
        if (copied && !m_copy)
            throw FormatError(ErrorCode::BadValue, m_file, "dataset " + d.path, std::nullopt,
                              "refers to decoded data but no decoded data was written");
        const MappedFile& target = copied ? *m_copy : *m_main;
        const auto end = checkedAdd(d.offset, d.bytes);
        if (!end || *end > target.size())
            throw FormatError(ErrorCode::Truncated, copied ? target.path().string() : m_file,
                              "dataset " + d.path + " data", d.offset,
                              "needs " + std::to_string(d.bytes) + " bytes but the file has " +
                                  std::to_string(target.size()));
        if (m_names.count(name))
            name = d.path; // unique: paths are
        if (!m_names.insert(name).second) {
            warn(d.path + ": listed twice");
            return;
        }
        TensorInfo t;
        t.name = std::move(name);
        t.shape = d.shape;
        t.dtype = *dtype;
        t.bytes = d.bytes;
        t.fileIndex = copied ? m_copyIndex : 0;
        t.offset = d.offset;
        m_model->addTensor(std::move(t));
    }

    std::filesystem::path m_path;
    std::string m_file;
    const h5::ProbeOutput& m_probe;
    std::shared_ptr<MappedFile> m_main;
    std::shared_ptr<MappedFile> m_copy;
    uint32_t m_copyIndex = 0;
    Model* m_model = nullptr;
    std::map<std::pair<std::string, std::string>, size_t> m_attrs;
    std::map<std::string, size_t> m_datasets;
    std::set<size_t> m_used;
    std::set<std::string> m_names;
    std::vector<std::string> m_warnings;
    size_t m_droppedWarnings = 0;
};

[[noreturn]] void throwProbeError(const std::string& file, const h5::ProbeOutput& out, uint64_t fileSize)
{
    const std::string& code = *out.errorCode;
    const std::string& msg = out.errorMessage;
    if (code == "not_hdf5")
        throw FormatError(ErrorCode::BadMagic, file, "HDF5 signature", 0, "not an HDF5 file: " + msg);
    if (code == "truncated")
        throw FormatError(ErrorCode::Truncated, file, "superblock end-of-file address", fileSize,
                          "the file is truncated (" + msg + ")");
    if (code == "io")
        throw Error(ErrorCode::Io, file + ": cannot read: " + msg);
    if (code == "usage")
        throw Error(ErrorCode::Internal, file + ": the HDF5 helper rejected its arguments: " + msg);
    throw FormatError(ErrorCode::BadValue, file, "HDF5 structure", std::nullopt,
                      "libhdf5 cannot open the file: " + msg);
}

} // namespace

std::shared_ptr<Model> h5::buildModel(const std::filesystem::path& path, const ProbeOutput& probe,
                                      std::shared_ptr<MappedFile> file, std::shared_ptr<MappedFile> copy)
{
    Builder builder(path, probe, std::move(file), std::move(copy));
    return builder.build();
}

std::shared_ptr<Model> loadHdf5(const std::filesystem::path& path, JobControl* job)
{
    return loadHdf5(path, job, Hdf5Options{});
}

std::shared_ptr<Model> loadHdf5(const std::filesystem::path& path, JobControl* job,
                                const Hdf5Options& options)
{
    const std::string file = path.string();
    auto mapped = MappedFile::open(path);
    if (!hasHdf5Signature(*mapped)) {
        if (mapped->size() >= 4 && std::memcmp(mapped->data(), "PK\x03\x04", 4) == 0)
            throw FormatError(ErrorCode::Unsupported, file, "HDF5 signature", 0,
                              "a zip archive (Keras 3 .keras format?), not HDF5: extract model.weights.h5 "
                              "from it and open that");
        throw FormatError(ErrorCode::BadMagic, file, "HDF5 signature", 0,
                          "not an HDF5 file (no \\x89HDF signature at byte 0, 512, 1024, ...)");
    }
    checkCancel(job);
    reportProgress(job, 0.0, "reading HDF5 structure");

    // Without a writable temporary directory the probe still runs; datasets that need decoding are then
    // listed in hdf5.warnings instead of loaded.
    const QString decodeDir =
        options.decodeDir.empty() ? QDir::tempPath() : QString::fromStdString(options.decodeDir);
    QTemporaryFile copyFile(decodeDir + QStringLiteral("/quantscope-h5copy-XXXXXX.bin"));
    const bool haveCopyFile = copyFile.open();
    copyFile.close();

    h5::ProbeOptions po;
    po.executable = options.probe;
    if (haveCopyFile) {
        po.copyTo = copyFile.fileName().toStdString();
        po.copyLimit =
            mapped->size() > (UINT64_MAX >> 4) ? UINT64_MAX >> 1 : mapped->size() * 8 + (256ull << 20);
    }
    po.inactivityTimeoutMs = options.inactivityTimeoutMs;
    po.memoryLimitBytes = options.memoryLimitBytes;
    const h5::ProbeRun run = h5::runProbe(path, po, job);

    const std::string helper = "the HDF5 reader (quantscope-h5probe, libhdf5)";
    switch (run.status) {
    case h5::ProbeRun::Status::FailedToStart:
        throw Error(ErrorCode::Io, file + ": cannot start " + run.executable + ": " + run.errorTail);
    case h5::ProbeRun::Status::Signalled:
        throw Error(ErrorCode::Crashed,
                    file + ": " + helper + " crashed (" + signalName(run.signal) +
                        ") reading this file; it is damaged or crafted to exploit libhdf5. "
                        "Nothing from it was loaded.");
    case h5::ProbeRun::Status::TimedOut:
        throw Error(ErrorCode::Crashed, file + ": " + helper + " made no progress for " +
                                            std::to_string(options.inactivityTimeoutMs / 1000) +
                                            " s and was stopped; the file is probably damaged or crafted.");
    case h5::ProbeRun::Status::OutputTooLarge:
        throw Error(ErrorCode::Crashed,
                    file + ": " + helper + " described more than 256 MB of structure and was stopped.");
    case h5::ProbeRun::Status::Exited:
        break;
    }

    size_t malformed = 0;
    const h5::ProbeOutput out = h5::parseProbeOutput(run.output, &malformed);
    if (out.errorCode)
        throwProbeError(file, out, mapped->size());
    if (run.exitCode != 0)
        throw Error(ErrorCode::Crashed,
                    file + ": " + helper + " failed with exit code " + std::to_string(run.exitCode) +
                        (run.errorTail.empty() ? "" : ": " + run.errorTail.substr(0, 500)));
    if (out.version != h5::kProtocolVersion)
        throw Error(ErrorCode::Internal,
                    file + ": " + run.executable + " speaks protocol version " + std::to_string(out.version) +
                        ", expected " + std::to_string(h5::kProtocolVersion) + " (mismatched installation?)");
    if (!out.complete || malformed)
        throw Error(ErrorCode::Crashed, file + ": " + helper + " produced " +
                                            (out.complete ? std::to_string(malformed) + " malformed records"
                                                          : std::string("an incomplete description")));
    checkCancel(job);

    std::shared_ptr<MappedFile> copy;
    const bool anyCopy = std::any_of(out.datasets.begin(), out.datasets.end(),
                                     [](const h5::Dataset& d) { return d.storage == h5::Storage::Copy; });
    if (anyCopy && haveCopyFile)
        copy = MappedFile::open(copyFile.fileName().toStdString()); // stays valid after the unlink below
    auto model = h5::buildModel(path, out, mapped, copy);
    reportProgress(job, 1.0, "done");
    return model;
}

} // namespace qs
