#include "widgets/jobarea.h"

#include "widgets/jobrunner.h"

#include <QHBoxLayout>
#include <QIcon>
#include <QLabel>
#include <QProgressBar>
#include <QToolButton>

#include <cmath>

namespace qs {

JobArea::JobArea(JobRunner* runner, QWidget* parent) : QWidget(parent)
{
    setObjectName(QStringLiteral("jobArea"));
    m_layout = new QHBoxLayout(this);
    m_layout->setContentsMargins(0, 0, 0, 0);
    m_layout->setSpacing(12);
    connect(runner, &JobRunner::jobStarted, this, &JobArea::addJob);
    for (JobHandle* h : runner->running())
        addJob(h);
    setVisible(!m_rows.isEmpty());
}

QString JobArea::formatEta(double seconds)
{
    if (!(seconds >= 0) || !std::isfinite(seconds))
        return {};
    const qint64 s = qint64(std::ceil(seconds));
    if (s < 60)
        return tr("%1 s left").arg(s);
    if (s < 3600)
        return tr("%1:%2 left").arg(s / 60).arg(s % 60, 2, 10, QLatin1Char('0'));
    return tr("%1 h %2 min left").arg(s / 3600).arg((s % 3600) / 60);
}

void JobArea::addJob(JobHandle* handle)
{
    if (m_rows.contains(handle))
        return;
    Row row;
    row.widget = new QWidget(this);
    auto* layout = new QHBoxLayout(row.widget);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->setSpacing(4);
    row.label = new QLabel(handle->title(), row.widget);
    row.bar = new QProgressBar(row.widget);
    row.bar->setRange(0, 1000);
    row.bar->setMaximumWidth(160);
    row.bar->setTextVisible(true);
    row.cancel = new QToolButton(row.widget);
    row.cancel->setObjectName(QStringLiteral("jobCancelButton"));
    row.cancel->setIcon(QIcon::fromTheme(QStringLiteral("process-stop"), QIcon(QStringLiteral(":/icons/cancel.svg"))));
    row.cancel->setToolTip(tr("Cancel: %1").arg(handle->title()));
    row.cancel->setAccessibleName(tr("Cancel %1").arg(handle->title()));
    row.cancel->setAutoRaise(true);
    layout->addWidget(row.label);
    layout->addWidget(row.bar);
    layout->addWidget(row.cancel);
    m_layout->addWidget(row.widget);
    m_rows.insert(handle, row);
    connect(row.cancel, &QToolButton::clicked, handle, [handle, button = row.cancel] {
        handle->cancel();
        button->setEnabled(false); // the job stops at its next cancel check
    });
    connect(handle, &JobHandle::progressChanged, this, [this, handle] { update(handle); });
    connect(handle, &JobHandle::finished, this, [this, handle] { removeJob(handle); });
    connect(handle, &QObject::destroyed, this, [this, handle] { removeJob(handle); });
    update(handle);
    show();
}

void JobArea::update(JobHandle* handle)
{
    const auto it = m_rows.constFind(handle);
    if (it == m_rows.cend())
        return;
    const JobProgress& p = handle->progress();
    it->bar->setValue(int(std::lround(p.fraction * 1000)));
    const QString stage = QString::fromStdString(p.stage);
    const QString eta = formatEta(handle->etaSeconds());
    it->bar->setFormat(eta.isEmpty() ? QStringLiteral("%p%") : QStringLiteral("%p% · ") + eta);
    it->label->setText(stage.isEmpty() || stage == handle->title() ? handle->title()
                                                                    : handle->title() + QStringLiteral(": ") + stage);
    it->bar->setToolTip(eta.isEmpty() ? handle->title() : handle->title() + QStringLiteral(", ") + eta);
}

void JobArea::removeJob(JobHandle* handle)
{
    const auto it = m_rows.find(handle);
    if (it == m_rows.end())
        return;
    it->widget->deleteLater();
    m_rows.erase(it);
    setVisible(!m_rows.isEmpty());
}

const JobArea::Row* JobArea::rowFor(const QString& title) const
{
    for (auto it = m_rows.cbegin(); it != m_rows.cend(); ++it)
        if (it.key()->title() == title)
            return &it.value();
    return nullptr;
}

QToolButton* JobArea::cancelButton(const QString& title) const
{
    const Row* r = rowFor(title);
    return r ? r->cancel : nullptr;
}

QProgressBar* JobArea::progressBar(const QString& title) const
{
    const Row* r = rowFor(title);
    return r ? r->bar : nullptr;
}

QString JobArea::etaText(const QString& title) const
{
    for (auto it = m_rows.cbegin(); it != m_rows.cend(); ++it)
        if (it.key()->title() == title)
            return formatEta(it.key()->etaSeconds());
    return {};
}

} // namespace qs
