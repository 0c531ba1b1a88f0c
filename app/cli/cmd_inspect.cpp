// quantscope-cli inspect / dump: model summary, tensor list, raw tensor export.
#include "core/util/atomicfile.h"
#include "app/cli/command.h"

#include "core/model/model.h"
#include "core/util/job.h"

#include <QCommandLineParser>
#include <QFile>
#include <QJsonArray>

#include <algorithm>
#include <cstdio>
#include <vector>

namespace {

QJsonObject configJson(const qs::ModelConfig& c)
{
    QJsonObject o;
    o[QStringLiteral("architecture")] = QString::fromStdString(c.architecture);
    o[QStringLiteral("layers")] = static_cast<qint64>(c.layers);
    o[QStringLiteral("hidden_size")] = static_cast<qint64>(c.hiddenSize);
    o[QStringLiteral("intermediate_size")] = static_cast<qint64>(c.intermediateSize);
    o[QStringLiteral("heads")] = static_cast<qint64>(c.heads);
    o[QStringLiteral("kv_heads")] = static_cast<qint64>(c.kvHeads);
    o[QStringLiteral("head_dim")] = static_cast<qint64>(c.headDim);
    o[QStringLiteral("vocab_size")] = static_cast<qint64>(c.vocabSize);
    o[QStringLiteral("context_length")] = static_cast<qint64>(c.contextLength);
    o[QStringLiteral("tied_embeddings")] = c.tiedEmbeddings;
    o[QStringLiteral("sliding_window")] = static_cast<qint64>(c.slidingWindow);
    o[QStringLiteral("experts")] = static_cast<qint64>(c.experts);
    return o;
}

std::shared_ptr<qs::Model> openWithProgress(const QString& path)
{
    cli::ProgressPrinter progress(QStringLiteral("loading"));
    qs::JobControl job([&](double f, const std::string& stage) { progress.update(f, stage); });
    return qs::openModel(path.toStdString(), &job);
}

int runInspect(QCommandLineParser& parser)
{
    const QStringList pos = parser.positionalArguments();
    if (pos.size() != 1)
        return cli::fail(QStringLiteral("inspect needs exactly one PATH"));
    auto model = openWithProgress(pos[0]);
    const auto& cfg = model->config();

    if (parser.isSet(QStringLiteral("json"))) {
        QJsonObject root;
        root[QStringLiteral("path")] = pos[0];
        root[QStringLiteral("format")] = QString::fromLatin1(qs::modelFormatName(model->format()));
        root[QStringLiteral("architecture")] = QString::fromStdString(cfg.architecture);
        root[QStringLiteral("parameters")] = static_cast<qint64>(model->parameterCount());
        root[QStringLiteral("bytes")] = static_cast<qint64>(model->totalBytes());
        root[QStringLiteral("bits_per_weight")] = model->bitsPerWeight();
        root[QStringLiteral("config")] = configJson(cfg);
        QJsonArray files;
        for (const auto& f : model->files())
            files.append(QString::fromStdString(f->path().string()));
        root[QStringLiteral("files")] = files;
        QJsonArray tensors;
        for (const auto& t : model->tensors()) {
            QJsonObject o;
            o[QStringLiteral("name")] = QString::fromStdString(t.name);
            o[QStringLiteral("role")] = QString::fromLatin1(qs::roleName(t.role.role));
            o[QStringLiteral("block")] = t.role.block;
            if (t.role.expert >= 0)
                o[QStringLiteral("expert")] = t.role.expert;
            QJsonArray shape;
            for (auto d : t.shape)
                shape.append(static_cast<qint64>(d));
            o[QStringLiteral("shape")] = shape;
            o[QStringLiteral("dtype")] = QString::fromLatin1(qs::dtypeName(t.dtype));
            o[QStringLiteral("bytes")] = static_cast<qint64>(t.bytes);
            o[QStringLiteral("parameters")] = static_cast<qint64>(t.elements());
            o[QStringLiteral("decodable")] = qs::dtypeInfo(t.dtype).decodable;
            o[QStringLiteral("file")] = static_cast<qint64>(t.fileIndex);
            o[QStringLiteral("offset")] = static_cast<qint64>(t.offset);
            tensors.append(o);
        }
        root[QStringLiteral("tensors")] = tensors;
        QJsonArray warnings;
        for (const auto& w : model->warnings())
            warnings.append(QString::fromStdString(w));
        root[QStringLiteral("warnings")] = warnings;
        cli::printJson(root);
        return 0;
    }

    std::printf("%s\n", cli::shown(model->path().string()).c_str());
    std::printf("  format        %s\n", qs::modelFormatName(model->format()));
    std::printf("  architecture  %s\n", cfg.architecture.empty() ? "(unknown)" : cli::shown(cfg.architecture).c_str());
    std::printf("  parameters    %llu\n", static_cast<unsigned long long>(model->parameterCount()));
    std::printf("  size          %llu bytes (%.3f bits per weight)\n",
                static_cast<unsigned long long>(model->totalBytes()), model->bitsPerWeight());
    if (cfg.layers)
        std::printf("  layers %u  hidden %u  heads %u/%u kv  head_dim %u  vocab %u  context %llu\n", cfg.layers,
                    cfg.hiddenSize, cfg.heads, cfg.kvHeads, cfg.headDim, cfg.vocabSize,
                    static_cast<unsigned long long>(cfg.contextLength));
    for (const auto& w : model->warnings())
        std::printf("  warning       %s\n", cli::shown(w).c_str());
    int width = 6;
    for (const auto& t : model->tensors())
        width = std::max(width, cli::displayWidth(cli::shown(t.name)));
    std::printf("\n%s %-12s %5s %-18s %-8s %12s\n", cli::padRight("tensor", width).c_str(), "role", "block", "shape",
                "dtype", "bytes");
    for (const auto& t : model->tensors()) {
        std::string shape;
        for (size_t i = 0; i < t.shape.size(); ++i)
            shape += (i ? "x" : "") + std::to_string(t.shape[i]);
        std::printf("%s %-12s %5d %-18s %-8s %12llu\n", cli::padRight(cli::shown(t.name), width).c_str(),
                    qs::roleName(t.role.role), t.role.block, shape.c_str(), qs::dtypeName(t.dtype),
                    static_cast<unsigned long long>(t.bytes));
    }
    return 0;
}

int runDump(QCommandLineParser& parser)
{
    const QStringList pos = parser.positionalArguments();
    if (pos.size() != 2)
        return cli::fail(QStringLiteral("dump needs PATH and TENSOR"));
    const QString out = parser.value(QStringLiteral("f32"));
    if (out.isEmpty())
        return cli::fail(QStringLiteral("dump needs --f32 OUT"));
    auto model = openWithProgress(pos[0]);
    const auto* tensor = model->find(pos[1].toStdString());
    if (!tensor)
        return cli::fail(QStringLiteral("no tensor named '%1' in %2").arg(pos[1], pos[0]));

    qs::AtomicFile file(out.toStdString()); // checked writes; replaces `out` only when complete
    // Decode a block of rows at a time so that a huge tensor never sits in RAM whole.
    const uint64_t rows = tensor->rows(), cols = tensor->columns();
    const uint64_t rowsPerChunk = std::max<uint64_t>(1, (8u << 20) / std::max<uint64_t>(1, cols));
    std::vector<float> buffer;
    for (uint64_t r = 0; r < rows; r += rowsPerChunk) {
        const uint64_t n = std::min(rowsPerChunk, rows - r);
        buffer.resize(n * cols);
        model->decodeRows(*tensor, r, n, buffer.data());
        static_assert(Q_BYTE_ORDER == Q_LITTLE_ENDIAN, "dump writes the host's float layout");
        file.write(buffer.data(), buffer.size() * 4);
    }
    file.commit(); // throws qs::Error(Io) naming the file and the reason; main() reports it
    std::fprintf(stderr, "wrote %llu float32 values to %s\n", static_cast<unsigned long long>(rows * cols),
                 qPrintable(out));
    return 0;
}

const CliRegistrar inspect({"inspect", "inspect PATH [--json]", "model summary and tensor list",
                            [](QCommandLineParser& p) {
                                p.addOption({QStringLiteral("json"), QStringLiteral("Print JSON.")});
                                p.addPositionalArgument(QStringLiteral("PATH"), QStringLiteral("Model file or folder."));
                            },
                            runInspect});

const CliRegistrar dump({"dump", "dump PATH TENSOR --f32 OUT", "write one tensor decoded to little-endian float32",
                         [](QCommandLineParser& p) {
                             p.addOption({QStringLiteral("f32"), QStringLiteral("Output file."), QStringLiteral("OUT")});
                             p.addPositionalArgument(QStringLiteral("PATH"), QStringLiteral("Model file or folder."));
                             p.addPositionalArgument(QStringLiteral("TENSOR"), QStringLiteral("Tensor name."));
                         },
                         runDump});

} // namespace
