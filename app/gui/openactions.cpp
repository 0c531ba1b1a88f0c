#include "app/gui/openactions.h"
#include "widgets/formatting.h"

#include "app/gui/recentfiles.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QMenu>
#include <QMimeData>
#include <QSettings>
#include <QUrl>

namespace qs {

namespace {
const QString lastDirKey = QStringLiteral("lastDirectory");

QIcon themedIcon(const char* themeName, const char* resource)
{
    return QIcon::fromTheme(QLatin1String(themeName), QIcon(QLatin1String(resource)));
}
} // namespace

OpenActions::OpenActions(QMenu* fileMenu, ErrorPresenter presentError, QWidget* dialogParent)
    : QObject(dialogParent), m_dialogParent(dialogParent), m_lastDir(QSettings().value(lastDirKey).toString())
{
    auto* open = fileMenu->addAction(themedIcon("document-open", ":/icons/open.svg"), tr("&Open…"), this,
                                     &OpenActions::openFileDialog);
    open->setShortcut(QKeySequence::Open);
    open->setToolTip(tr("Open a model file (safetensors, index.json, GGUF, HDF5, config.json)"));
    auto* folder = fileMenu->addAction(themedIcon("folder-open", ":/icons/folder.svg"), tr("Open &Folder…"),
                                       this, &OpenActions::openFolderDialog);
    folder->setShortcut(QKeySequence(tr("Ctrl+Shift+O")));
    folder->setToolTip(tr("Open a Hugging Face model folder (sharded safetensors)"));
    auto* sample = fileMenu->addAction(
        QIcon(QStringLiteral(":/icons/sample.svg")), tr("Open &Sample Model"), this, [this, presentError] {
            const QString path = samplePath();
            if (path.isEmpty())
                presentError(tr("Sample model"), tr("The bundled sample model was not found."), {});
            else
                emit openRequested(path);
        });
    sample->setToolTip(tr("Open the bundled stories260K sample model"));
    m_toolBarActions = {open, folder, sample};
    m_recentMenu =
        fileMenu->addMenu(themedIcon("document-open-recent", ":/icons/open.svg"), tr("Open &Recent"));
    m_recentMenu->setObjectName(QStringLiteral("recentMenu"));
    m_recent = new RecentFiles(m_recentMenu, this);
    connect(m_recent, &RecentFiles::openRequested, this, &OpenActions::openRequested);
}

QString OpenActions::samplePath()
{
    const QString relative = QStringLiteral("/stories260K/stories260K.gguf");
    const QStringList candidates = {
        QStringLiteral(QS_SAMPLE_SOURCE_DIR) + relative,
        QStringLiteral(QS_SAMPLE_INSTALL_DIR) + relative,
        QCoreApplication::applicationDirPath() + QStringLiteral("/../share/quantscope/samples") + relative,
    };
    for (const QString& c : candidates)
        if (QFileInfo::exists(c))
            return QDir::cleanPath(c);
    return {};
}

// One file or folder opens as is; several files of one folder (e.g. the shards of a model) open that folder.
QString OpenActions::pathForDrop(const QMimeData* mime)
{
    if (!mime || !mime->hasUrls())
        return {};
    QStringList files;
    for (const QUrl& url : mime->urls())
        if (url.isLocalFile())
            files << url.toLocalFile();
    if (files.isEmpty())
        return {};
    const QString dir = QFileInfo(files.front()).absolutePath();
    for (const QString& f : files)
        if (QFileInfo(f).absolutePath() != dir)
            return files.front();
    return files.size() == 1 ? files.front() : dir;
}

void OpenActions::openFileDialog()
{
    const QString filter = modelFileFilter(); // from the loader table
    chosen(QFileDialog::getOpenFileName(m_dialogParent, tr("Open Model"), m_lastDir, filter));
}

void OpenActions::openFolderDialog()
{
    chosen(QFileDialog::getExistingDirectory(m_dialogParent, tr("Open Model Folder"), m_lastDir));
}

void OpenActions::chosen(const QString& path)
{
    if (path.isEmpty())
        return;
    m_lastDir = QFileInfo(path).absolutePath();
    QSettings().setValue(lastDirKey, m_lastDir);
    emit lastDirectoryChanged(m_lastDir);
    emit openRequested(path);
}

} // namespace qs
