#include "widgets/formatting.h"

#include "core/io/loader.h"

#include <QLocale>
#include <QObject>
#include <QStringList>
#include <cmath>

namespace qs {

QString formatBytes(uint64_t bytes)
{
    static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (bytes < 1024)
        return QStringLiteral("%1 B").arg(bytes);
    double value = double(bytes);
    int unit = 0;
    while (value >= 1024.0 && unit < 5) {
        value /= 1024.0;
        ++unit;
    }
    const int decimals = value < 10 ? 2 : (value < 100 ? 1 : 0);
    return QStringLiteral("%1 %2").arg(value, 0, 'f', decimals).arg(QLatin1String(units[unit]));
}

QString formatCount(uint64_t count)
{
    static const char* const suffixes[] = {"", "K", "M", "B", "T"};
    if (count < 1000)
        return QString::number(count);
    double value = double(count);
    int unit = 0;
    while (value >= 1000.0 && unit < 4) {
        value /= 1000.0;
        ++unit;
    }
    const int decimals = value < 10 ? 2 : (value < 100 ? 1 : 0);
    QString text = QString::number(value, 'f', decimals);
    if (text.contains(QLatin1Char('.'))) {
        while (text.endsWith(QLatin1Char('0')))
            text.chop(1);
        if (text.endsWith(QLatin1Char('.')))
            text.chop(1);
    }
    return text + QLatin1String(suffixes[unit]);
}

QString formatExact(uint64_t count)
{
    return QLocale(QLocale::English).toString(qulonglong(count));
}

QString countNoun(uint64_t count, const char* singular, const char* plural)
{
    return QStringLiteral("%1 %2").arg(formatExact(count), QLatin1String(count == 1 ? singular : plural));
}

QString formatShape(const std::vector<uint64_t>& shape)
{
    if (shape.empty())
        return QStringLiteral("scalar");
    QStringList parts;
    for (uint64_t d : shape)
        parts << QString::number(d);
    return parts.join(QStringLiteral(" × "));
}

QString formatStat(double value)
{
    if (std::isnan(value))
        return QStringLiteral("NaN");
    if (std::isinf(value))
        return value > 0 ? QStringLiteral("∞") : QStringLiteral("−∞");
    if (value == 0.0)
        return QStringLiteral("0");
    const double magnitude = std::fabs(value);
    if (magnitude >= 1e5 || magnitude < 1e-3)
        return QString::number(value, 'e', 3);
    return QString::number(value, 'g', 4);
}

QString modelFileFilter()
{
    QStringList all;
    QStringList perLoader;
    for (const LoaderInfo& l : modelLoaders()) {
        QStringList patterns;
        for (std::string_view suffix : l.suffixes)
            patterns << QLatin1Char('*') + QString::fromLatin1(suffix.data(), qsizetype(suffix.size()));
        all << patterns;
        perLoader << QString::fromLatin1(l.name) + QStringLiteral(" (") + patterns.join(QLatin1Char(' ')) +
                         QLatin1Char(')');
    }
    all.removeDuplicates();
    return QObject::tr("Models (%1)").arg(all.join(QLatin1Char(' '))) + QStringLiteral(";;") +
           perLoader.join(QStringLiteral(";;")) + QStringLiteral(";;") + QObject::tr("All files (*)");
}

} // namespace qs
