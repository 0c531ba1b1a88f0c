#include "app/gui/application.h"

#include "app/gui/mainwindow.h"
#include "app/gui/quantizedialog.h"
#include "widgets/histogramview.h"
#include "widgets/plandocument.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QDialog>
#include <QDir>
#include <QFileInfo>
#include <QTemporaryDir>
#include <QTimer>

#include <cstdio>
#include <utility>

namespace qs {

namespace {

bool g_budgetDialog = false; // --budget-dialog: grab the fit-to-budget dialog instead of the window
bool g_sensitivityStarted = false; // --view sensitivity: the matrix is computed before grabbing
bool g_quantizeDialog = false; // --quantize-dialog: quantize into a temporary folder, grab the dialog

// Runs the Quantize dialog with the default target into a temporary folder and grabs it once it shows the
// summary.
void screenshotQuantizeDialog(MainWindow& window, const QString& out)
{
    static QTemporaryDir folder(QDir::tempPath() + QStringLiteral("/quantscope-XXXXXX"));
    static bool started = false;
    if (std::exchange(started, true))
        return;
    QuantizeDialog* dialog = window.quantize();
    dialog->resize(860, 720);
    dialog->setOutputPath(folder.filePath(QFileInfo(dialog->outputPath()).fileName()));
    QObject::connect(dialog, &QuantizeDialog::runFinished, dialog, [dialog, out] {
        QTimer::singleShot(400, dialog, [dialog, out] {
            const bool ok = dialog->grab().save(out);
            if (!ok)
                std::fprintf(stderr, "quantscope: cannot write %s\n", qPrintable(out));
            QCoreApplication::exit(ok ? 0 : 1);
        });
    });
    if (!dialog->run())
        QCoreApplication::exit(1);
}

void takeScreenshot(MainWindow& window, const QString& out, const QString& view, const QString& select)
{
    if (view == QLatin1String("sensitivity") && !g_sensitivityStarted && window.model()) {
        g_sensitivityStarted = true;
        QObject::connect(&window, &MainWindow::sensitivityFinished, &window,
                         [&window, out, view, select] { takeScreenshot(window, out, view, select); });
        window.computeSensitivity();
    }
    if (view == QLatin1String("sensitivity") && window.isComputingSensitivity())
        return; // sensitivityFinished calls again
    if (!select.isEmpty() && window.selectTensorsMatching(select) == 0)
        std::fprintf(stderr, "quantscope: no tensor matches '%s'\n", qPrintable(select));
    if (!view.isEmpty() && !window.showView(view))
        std::fprintf(stderr, "quantscope: unknown view '%s' (known: %s)\n", qPrintable(view),
                     qPrintable(window.viewNames().join(QStringLiteral(", "))));
    if (g_quantizeDialog)
        return screenshotQuantizeDialog(window, out);
    // Let layouts and plots settle before grabbing.
    if (g_budgetDialog)
        window.fitPlanToBudget();
    QTimer::singleShot(400, &window, [&window, out] {
        QWidget* target = &window;
        if (auto* dialog = window.findChild<QDialog*>(QStringLiteral("budgetDialog")); dialog && g_budgetDialog)
            target = dialog;
        const bool ok = target->grab().save(out);
        if (!ok)
            std::fprintf(stderr, "quantscope: cannot write %s\n", qPrintable(out));
        QCoreApplication::exit(ok ? 0 : 1);
    });
}

// Test hook (tests/gui/tst_crashrestore.cpp), inert unless QUANTSCOPE_TEST_EDIT is set to "tensor=format":
// once a model is loaded that tensor is assigned to that format (one unsaved plan edit), and every time the
// autosave is written "quantscope: autosaved <path>" goes to stderr, so a test can SIGKILL the process with
// unsaved edits on disk and restore them in another process.
void installTestEdit(MainWindow& window)
{
    const QString edit = qEnvironmentVariable("QUANTSCOPE_TEST_EDIT");
    const qsizetype eq = edit.lastIndexOf(QLatin1Char('='));
    if (eq <= 0)
        return;
    const QString tensor = edit.left(eq);
    const QString format = edit.mid(eq + 1);
    QObject::connect(window.planSession(), &PlanSession::autosaved, &window, [](const QString& path) {
        std::fprintf(stderr, "quantscope: autosaved %s\n", qPrintable(path));
        std::fflush(stderr);
    });
    QObject::connect(&window, &MainWindow::modelLoaded, &window, [&window, tensor, format] {
        if (!window.planDocument()->assign({tensor}, format))
            std::fprintf(stderr, "quantscope: QUANTSCOPE_TEST_EDIT: cannot assign %s to %s\n", qPrintable(tensor),
                         qPrintable(format));
    });
}

} // namespace

int runApplication(QApplication& app)
{
    QCoreApplication::setOrganizationName(QStringLiteral("Quantscope"));
    QCoreApplication::setApplicationName(QStringLiteral("Quantscope"));
    QCoreApplication::setApplicationVersion(QStringLiteral("0.1.0"));

    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("Neural-network weight analysis and quantization workbench"));
    parser.addHelpOption();
    parser.addVersionOption();
    parser.addPositionalArgument(QStringLiteral("path"),
                                 QStringLiteral("Model to open: .safetensors, model.safetensors.index.json, "
                                                "a model folder, .gguf, .h5, or config.json"),
                                 QStringLiteral("[path]"));
    const QCommandLineOption screenshotOption(QStringLiteral("screenshot"),
                                              QStringLiteral("Render the window to <file> after loading, then quit."),
                                              QStringLiteral("file"));
    const QCommandLineOption viewOption(QStringLiteral("view"),
                                        QStringLiteral("View to show: tensors, statistics, depth."),
                                        QStringLiteral("name"));
    const QCommandLineOption selectOption(QStringLiteral("select"),
                                          QStringLiteral("Select the tensors matching <regex> (screenshots)."),
                                          QStringLiteral("regex"));
    const QCommandLineOption sizeOption(QStringLiteral("size"), QStringLiteral("Window size for the screenshot."),
                                        QStringLiteral("WxH"), QStringLiteral("1400x860"));
    parser.addOption(screenshotOption);
    parser.addOption(viewOption);
    parser.addOption(sizeOption);
    parser.addOption(selectOption);
    const QCommandLineOption gridOption(QStringLiteral("grid"),
                                        QStringLiteral("Histogram: overlay the grid of <format> (screenshots)."),
                                        QStringLiteral("format"));
    const QCommandLineOption logYOption(QStringLiteral("log-y"), QStringLiteral("Histogram: logarithmic counts."));
    const QCommandLineOption symlogOption(QStringLiteral("symlog"), QStringLiteral("Histogram: symmetric-log values."));
    parser.addOption(gridOption);
    const QCommandLineOption budgetOption(QStringLiteral("budget-dialog"),
                                          QStringLiteral("Screenshot the fit-to-budget dialog instead of the window."));
    parser.addOption(budgetOption);
    const QCommandLineOption quantizeOption(
        QStringLiteral("quantize-dialog"),
        QStringLiteral("Screenshot the Quantize dialog after quantizing into a temporary folder."));
    parser.addOption(quantizeOption);
    parser.addOption(logYOption);
    parser.addOption(symlogOption);
    parser.process(app);

    g_budgetDialog = parser.isSet(budgetOption);
    g_quantizeDialog = parser.isSet(quantizeOption);
    MainWindow window;
    if (parser.isSet(gridOption))
        window.histogramView()->setGridFormat(parser.value(gridOption));
    window.histogramView()->setLogY(parser.isSet(logYOption));
    window.histogramView()->setSymlogX(parser.isSet(symlogOption));
    const QString screenshot = parser.value(screenshotOption);
    const QString view = parser.value(viewOption);
    const QString select = parser.value(selectOption);
    if (!screenshot.isEmpty()) {
        const QStringList wh = parser.value(sizeOption).split(QLatin1Char('x'));
        if (wh.size() == 2)
            window.resize(wh[0].toInt(), wh[1].toInt());
        // Screenshots never ask about (nor discard) autosaved plans.
        window.setRestorePrompt([](const QString&, std::function<void(bool)>) {});
        // Errors still produce a screenshot (of the dialog-free window) instead of blocking.
        window.setErrorPresenter([](const QString&, const QString& text, const QString& detail) {
            std::fprintf(stderr, "quantscope: %s\n%s\n", qPrintable(text), qPrintable(detail));
        });
        // After a load, wait for the analysis so the plots are filled.
        QObject::connect(&window, &MainWindow::modelLoaded, &window, [&window, screenshot, view, select] {
            if (!window.isAnalyzing())
                takeScreenshot(window, screenshot, view, select);
        });
        QObject::connect(&window, &MainWindow::analysisFinished, &window,
                         [&window, screenshot, view, select] { takeScreenshot(window, screenshot, view, select); });
        QObject::connect(&window, &MainWindow::loadFailed, &window,
                         [&window, screenshot, view, select] { takeScreenshot(window, screenshot, view, select); });
    }
    installTestEdit(window);
    window.show();
    const QStringList args = parser.positionalArguments();
    if (!args.isEmpty())
        window.openPath(args.front());
    else if (!screenshot.isEmpty())
        takeScreenshot(window, screenshot, view, select);
    return app.exec();
}

} // namespace qs
