// quantscope-cli stats: weight statistics per tensor (the numbers behind the distribution views).
#include "app/cli/command.h"
#include "core/util/namepattern.h"
#include "core/jobs/jobs.h"
#include "core/model/model.h"
#include "core/stats/stats.h"
#include "core/util/job.h"

#include <QCommandLineParser>
#include <QJsonArray>
#include <algorithm>
#include <optional>
#include <cmath>
#include <cstdio>

namespace {

QJsonValue number(double v)
{
    return std::isfinite(v) ? QJsonValue(v) : QJsonValue(QJsonValue::Null);
}

QJsonArray array(const std::vector<double>& v)
{
    QJsonArray a;
    for (double x : v)
        a.append(number(x));
    return a;
}

QJsonArray array(const std::vector<uint64_t>& v)
{
    QJsonArray a;
    for (uint64_t x : v)
        a.append(static_cast<qint64>(x));
    return a;
}

struct Summary {
    double min = 0, median = 0, max = 0;
    size_t argmax = 0;
};

Summary summarize(const std::vector<float>& v)
{
    Summary s;
    if (v.empty())
        return s;
    std::vector<float> sorted(v);
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<ptrdiff_t>(sorted.size() / 2),
                     sorted.end());
    s.median = sorted[sorted.size() / 2];
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    s.min = *lo;
    s.max = *hi;
    s.argmax = static_cast<size_t>(hi - v.begin());
    return s;
}

// Channels whose absmax is far above the typical channel's: the ones per-channel scales must absorb.
std::vector<size_t> outlierChannels(const std::vector<float>& absmax, double median, size_t limit)
{
    std::vector<size_t> idx;
    for (size_t i = 0; i < absmax.size(); ++i)
        if (median > 0 && absmax[i] > 4 * median)
            idx.push_back(i);
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return absmax[a] > absmax[b]; });
    if (idx.size() > limit)
        idx.resize(limit);
    return idx;
}

qs::BinnedHistogram histogramOf(const qs::TensorStats& s, size_t bins, bool symlog)
{
    return symlog ? s.symlogHistogram(bins) : s.linearHistogram(bins);
}

QJsonObject tensorJson(const qs::TensorStats& s, size_t bins, bool symlog, bool channelArrays)
{
    QJsonObject o;
    o[QStringLiteral("name")] = QString::fromStdString(s.name);
    o[QStringLiteral("dtype")] = QString::fromLatin1(qs::dtypeName(s.dtype));
    QJsonArray shape;
    for (auto d : s.shape)
        shape.append(static_cast<qint64>(d));
    o[QStringLiteral("shape")] = shape;
    o[QStringLiteral("count")] = static_cast<qint64>(s.count);
    if (!s.error.empty()) {
        o[QStringLiteral("error")] = QString::fromStdString(s.error);
        return o;
    }
    o[QStringLiteral("finite")] = static_cast<qint64>(s.finite);
    o[QStringLiteral("min")] = number(s.min);
    o[QStringLiteral("max")] = number(s.max);
    o[QStringLiteral("mean")] = number(s.mean);
    o[QStringLiteral("std")] = number(s.std);
    o[QStringLiteral("absmax")] = number(s.absmax);
    o[QStringLiteral("kurtosis")] = number(s.kurtosis);
    o[QStringLiteral("zeros")] = static_cast<qint64>(s.zeros);
    o[QStringLiteral("nan")] = static_cast<qint64>(s.nan);
    o[QStringLiteral("inf")] = static_cast<qint64>(s.inf);
    o[QStringLiteral("beyond_3sigma")] = s.share3Sigma();
    o[QStringLiteral("beyond_6sigma")] = s.share6Sigma();
    o[QStringLiteral("beyond_3sigma_count")] = static_cast<qint64>(s.beyond3Sigma);
    o[QStringLiteral("beyond_6sigma_count")] = static_cast<qint64>(s.beyond6Sigma);
    o[QStringLiteral("cached")] = s.fromCache;

    const auto h = histogramOf(s, bins, symlog);
    QJsonObject hist;
    hist[QStringLiteral("scale")] = symlog ? QStringLiteral("symlog") : QStringLiteral("linear");
    if (symlog)
        hist[QStringLiteral("linthresh")] = number(h.linthresh);
    hist[QStringLiteral("edges")] = array(h.edges);
    hist[QStringLiteral("counts")] = array(h.counts);
    hist[QStringLiteral("exact")] = s.histogram.exact();
    o[QStringLiteral("histogram")] = hist;

    QJsonObject ch;
    ch[QStringLiteral("count")] = static_cast<qint64>(s.channelAbsmax.size());
    ch[QStringLiteral("length")] = static_cast<qint64>(s.channelLength);
    if (!s.channelAbsmax.empty()) {
        const Summary a = summarize(s.channelAbsmax), d = summarize(s.channelStd);
        ch[QStringLiteral("absmax")] = QJsonObject{{QStringLiteral("min"), number(a.min)},
                                                   {QStringLiteral("median"), number(a.median)},
                                                   {QStringLiteral("max"), number(a.max)},
                                                   {QStringLiteral("argmax"), static_cast<qint64>(a.argmax)}};
        ch[QStringLiteral("std")] = QJsonObject{{QStringLiteral("min"), number(d.min)},
                                                {QStringLiteral("median"), number(d.median)},
                                                {QStringLiteral("max"), number(d.max)},
                                                {QStringLiteral("argmax"), static_cast<qint64>(d.argmax)}};
        QJsonArray outliers;
        for (size_t i : outlierChannels(s.channelAbsmax, a.median, 16))
            outliers.append(static_cast<qint64>(i));
        ch[QStringLiteral("outliers")] = outliers; // absmax > 4x the median channel's, largest first
        if (channelArrays) {
            QJsonArray am, sd;
            for (size_t i = 0; i < s.channelAbsmax.size(); ++i) {
                am.append(double(s.channelAbsmax[i]));
                sd.append(double(s.channelStd[i]));
            }
            ch[QStringLiteral("absmax_values")] = am;
            ch[QStringLiteral("std_values")] = sd;
        }
    }
    o[QStringLiteral("channels")] = ch;
    return o;
}

std::string sparkline(const qs::BinnedHistogram& h)
{
    static const char* levels[] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    uint64_t peak = 0;
    for (auto c : h.counts)
        peak = std::max(peak, c);
    std::string line;
    for (auto c : h.counts) {
        // Log scale so that tails stay visible next to the bulk.
        const double f = peak ? std::log1p(double(c)) / std::log1p(double(peak)) : 0;
        line += levels[c ? std::max(1, int(std::lround(f * 8))) : 0];
    }
    return line;
}

int runStats(QCommandLineParser& parser)
{
    const QStringList pos = parser.positionalArguments();
    if (pos.size() != 1)
        return cli::fail(QStringLiteral("stats needs exactly one PATH"));
    bool ok = true;
    const size_t bins =
        parser.isSet(QStringLiteral("bins")) ? parser.value(QStringLiteral("bins")).toULong(&ok) : 32;
    if (!ok || bins < 1 || bins > 100000)
        return cli::fail(QStringLiteral("--bins needs a number from 1 to 100000"));
    // RE2 (NamePattern): linear time in the name, so a hostile pattern cannot hang or overflow the stack.
    std::optional<qs::NamePattern> filter;
    if (parser.isSet(QStringLiteral("tensor"))) {
        const std::string pattern = parser.value(QStringLiteral("tensor")).toStdString();
        if (const std::string why = qs::NamePattern::check(pattern); !why.empty())
            return cli::fail(QStringLiteral("--tensor: %1").arg(QString::fromStdString(why)));
        filter.emplace(pattern);
    }
    const bool json = parser.isSet(QStringLiteral("json"));
    const bool symlog = parser.isSet(QStringLiteral("symlog"));

    qs::LoadJob load({pos[0].toStdString()});
    if (const int code = cli::runJob(load, QStringLiteral("loading")))
        return code;
    const std::shared_ptr<qs::Model> model = load.takeResult().model;
    qs::StatsOptions options;
    options.useCache = !parser.isSet(QStringLiteral("no-cache"));
    for (size_t i = 0; i < model->tensors().size(); ++i)
        if (!filter || filter->search(model->tensors()[i].name))
            options.tensors.push_back(i);
    if (options.tensors.empty())
        return cli::fail(!filter ? QStringLiteral("%1 has no tensors").arg(pos[0])
                                 : QStringLiteral("no tensor matches '%1'")
                                       .arg(QString::fromStdString(filter->pattern())));

    qs::StatsJob job({model, options});
    if (const int code = cli::runJob(job, QStringLiteral("analysing")))
        return code;
    const std::vector<qs::TensorStats> all = job.takeResult().tensors;

    if (json) {
        QJsonObject root;
        root[QStringLiteral("path")] = pos[0];
        root[QStringLiteral("format")] = QString::fromLatin1(qs::modelFormatName(model->format()));
        QJsonArray tensors;
        for (const auto& s : all)
            tensors.append(tensorJson(s, bins, symlog, parser.isSet(QStringLiteral("channels"))));
        root[QStringLiteral("tensors")] = tensors;
        cli::printJson(root);
        return 0;
    }
    // Columns padded by characters: names can be long, and "σ" is two bytes.
    int width = 6;
    for (const auto& s : all)
        width = std::max(width, cli::displayWidth(cli::shown(s.name)));
    std::printf("%s %-6s %10s %11s %11s %11s %10s %10s %9s %7s %5s %s %s  %s\n",
                cli::padRight("tensor", width).c_str(), "dtype", "count", "min", "max", "mean", "std", "absmax",
                "kurtosis", "zeros", "nan", cli::padLeft(">3σ %", 7).c_str(), cli::padLeft(">6σ %", 7).c_str(),
                symlog ? "histogram (symlog x, log y)" : "histogram (log y)");
    for (const auto& s : all) {
        if (!s.error.empty()) {
            std::printf("%s %-6s %10llu  error: %s\n", cli::padRight(cli::shown(s.name), width).c_str(),
                        qs::dtypeName(s.dtype), static_cast<unsigned long long>(s.count),
                        cli::shown(s.error).c_str());
            continue;
        }
        std::printf(
            "%s %-6s %10llu %11.4g %11.4g %11.4g %10.4g %10.4g %9.3g %7llu %5llu %7.3f %7.3f  %s\n",
            cli::padRight(cli::shown(s.name), width).c_str(), qs::dtypeName(s.dtype), static_cast<unsigned long long>(s.count), s.min, s.max,
            s.mean, s.std, s.absmax, s.kurtosis, static_cast<unsigned long long>(s.zeros),
            static_cast<unsigned long long>(s.nan + s.inf), 100 * s.share3Sigma(), 100 * s.share6Sigma(),
            sparkline(histogramOf(s, bins, symlog)).c_str());
    }
    return 0;
}

const CliRegistrar stats(
    {"stats", "stats PATH [--tensor REGEX] [--bins N] [--symlog] [--json] [--no-cache]",
     "weight statistics and histograms per tensor",
     [](QCommandLineParser& p) {
         p.addOption({QStringLiteral("tensor"), QStringLiteral("Only tensors whose name matches REGEX."),
                      QStringLiteral("REGEX")});
         p.addOption(
             {QStringLiteral("bins"), QStringLiteral("Histogram bins (default 32)."), QStringLiteral("N")});
         p.addOption({QStringLiteral("symlog"),
                      QStringLiteral("Symmetric-log histogram bins (linear within one std, log beyond).")});
         p.addOption({QStringLiteral("json"), QStringLiteral("Print JSON.")});
         p.addOption(
             {QStringLiteral("no-cache"), QStringLiteral("Neither read nor write the statistics cache.")});
         p.addOption(
             {QStringLiteral("channels"), QStringLiteral("With --json: every channel's absmax and std.")});
         p.addPositionalArgument(QStringLiteral("PATH"), QStringLiteral("Model file or folder."));
     },
     runStats, true});

} // namespace
