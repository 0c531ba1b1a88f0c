// quantscope-cli gpus: the GPU catalogue (built-in plus the user's additions).
#include "app/cli/command.h"
#include "core/plan/gpucatalog.h"

#include <QCommandLineParser>
#include <QJsonArray>
#include <cstdio>

namespace {

int runGpus(QCommandLineParser& parser)
{
    const qs::GpuCatalog catalog = qs::GpuCatalog::load();
    if (parser.isSet(QStringLiteral("json"))) {
        QJsonObject root;
        QJsonArray sources;
        for (const auto& s : catalog.sources())
            sources.append(QString::fromStdString(s.string()));
        root[QStringLiteral("sources")] = sources;
        root[QStringLiteral("user_file")] =
            QString::fromStdString(qs::GpuCatalog::userCatalogPath().string());
        QJsonArray gpus;
        for (const auto& g : catalog.gpus()) {
            QJsonObject o;
            o[QStringLiteral("id")] = QString::fromStdString(g.id);
            o[QStringLiteral("name")] = QString::fromStdString(g.name);
            o[QStringLiteral("vendor")] = QString::fromStdString(g.vendor);
            o[QStringLiteral("kind")] = QString::fromLatin1(qs::gpuKindName(g.kind));
            o[QStringLiteral("memory_bytes")] = static_cast<qint64>(g.memoryBytes);
            o[QStringLiteral("usable_bytes")] = static_cast<qint64>(g.usableBytes());
            o[QStringLiteral("memory_source")] = QString::fromStdString(g.memorySource);
            o[QStringLiteral("architecture")] = QString::fromStdString(g.architecture);
            o[QStringLiteral("bandwidth_gb_s")] = g.bandwidthGBps;
            QJsonArray aliases;
            for (const auto& a : g.aliases)
                aliases.append(QString::fromStdString(a));
            o[QStringLiteral("aliases")] = aliases;
            gpus.append(o);
        }
        root[QStringLiteral("gpus")] = gpus;
        cli::printJson(root);
        return 0;
    }
    std::printf("%-16s %-40s %-12s %10s %10s %10s\n", "id", "name", "kind", "memory", "usable", "bandwidth");
    for (const auto& g : catalog.gpus())
        std::printf("%-16s %-40s %-12s %7.1f GiB %6.1f GiB%s %6.0f GB/s\n", g.id.c_str(), g.name.c_str(),
                    qs::gpuKindName(g.kind), static_cast<double>(g.memoryBytes) / (1ull << 30),
                    static_cast<double>(g.usableBytes()) / (1ull << 30), g.driverMemoryBytes ? "*" : " ",
                    g.bandwidthGBps);
    std::printf("\n* usable memory as the driver reports it (memory_source in --json); others nominal\n");
    std::printf("\n%zu devices from", catalog.gpus().size());
    for (const auto& s : catalog.sources())
        std::printf(" %s", s.string().c_str());
    std::printf("\nadd or correct devices in %s\n", qs::GpuCatalog::userCatalogPath().string().c_str());
    return 0;
}

const CliRegistrar gpus({"gpus", "gpus [--json]", "list the GPU catalogue (memory, bandwidth)",
                         [](QCommandLineParser& p) {
                             p.addOption({QStringLiteral("json"), QStringLiteral("Print JSON.")});
                         },
                         runGpus});

} // namespace
