// UI latency during a whole-model analysis: the real window (offscreen) opens a 384 MiB F32 model and
// analyses it while a 10 ms timer measures how late each tick comes. Prints the analysis time and the
// distribution of gaps between ticks (the figures docs/performance.md quotes); asserts nothing.
#include "app/gui/mainwindow.h"
#include "gui/latency_model.h"
#include "widgets/statsstore.h"

#include <QApplication>
#include <QElapsedTimer>
#include <QSettings>
#include <QTemporaryDir>
#include <QTimer>

#include <algorithm>
#include <cstdio>

int main(int argc, char** argv)
{
    qputenv("QT_QPA_PLATFORM", "offscreen");
    QApplication app(argc, argv);
    QTemporaryDir dir;
    qputenv("QUANTSCOPE_CACHE_DIR", dir.filePath(QStringLiteral("cache")).toLocal8Bit());
    qputenv("XDG_DATA_HOME", dir.filePath(QStringLiteral("data")).toLocal8Bit());
    QSettings::setDefaultFormat(QSettings::IniFormat);
    QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, dir.path());
    const QString path = dir.filePath(QStringLiteral("big.safetensors"));
    const int total = qstest::writeLatencyModel(path, 12);
    if (total == 0)
        return 1;

    qs::MainWindow window;
    window.resize(1200, 800);
    window.show();
    QElapsedTimer clock;
    std::vector<qint64> gaps;
    qint64 last = -1, start = 0;
    bool analysing = false;
    QObject::connect(window.statsStore(), &qs::StatsStore::started, [&] {
        analysing = true;
        start = clock.elapsed();
    });
    QTimer ticker;
    ticker.setInterval(10);
    ticker.setTimerType(Qt::PreciseTimer);
    QObject::connect(&ticker, &QTimer::timeout, [&] {
        const qint64 now = clock.elapsed();
        if (analysing && last >= 0)
            gaps.push_back(now - last);
        last = now;
    });
    QObject::connect(&window, &qs::MainWindow::analysisFinished, [&] {
        const qint64 elapsed = clock.elapsed() - start;
        std::sort(gaps.begin(), gaps.end());
        auto pct = [&](double p) { return gaps.empty() ? 0 : gaps[size_t(p * double(gaps.size() - 1))]; };
        std::printf("analysis of %d tensors (384 MiB F32): %lld ms; gaps between 10 ms ticks: median %lld ms, "
                    "p99 %lld ms, worst %lld ms (%zu ticks)\n",
                    total, elapsed, pct(0.5), pct(0.99), gaps.empty() ? 0 : gaps.back(), gaps.size());
        app.quit();
    });
    clock.start();
    ticker.start();
    window.openPath(path);
    return app.exec();
}
