#pragma once
// Opens models in the background. One load at a time: starting a new one cancels the previous, whose
// result is then dropped. Progress is polled from the job at 10 Hz; results arrive through signals on
// the UI thread. Failures become a message (qs::FormatError's text names the field and byte offset).

#include "core/model/model.h"

#include <QFutureWatcher>
#include <QObject>
#include <QTimer>

#include <memory>

namespace qs {

class PolledJobProgress;

class ModelLoader final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ModelLoader)

public:
    struct Result {
        std::shared_ptr<Model> model;
        QString error;      // empty on success
        QString errorKind;  // e.g. "Truncated", from qs::ErrorCode
        bool cancelled = false;
    };

    explicit ModelLoader(QObject* parent = nullptr);
    ~ModelLoader() override;

    void load(const QString& path);
    void cancel();
    bool isRunning() const;
    QString currentPath() const { return m_path; }

signals:
    void started(const QString& path);
    void progress(double fraction, const QString& stage);
    void loaded(const QString& path, std::shared_ptr<qs::Model> model);
    void failed(const QString& path, const QString& message, const QString& kind);
    void cancelled(const QString& path);

private:
    void onFinished();
    void poll();

    QFutureWatcher<Result>* m_watcher = nullptr;
    std::shared_ptr<PolledJobProgress> m_progress;
    QTimer m_pollTimer;
    QString m_path;
    bool m_running = false; // from load() until a result signal was emitted
};

} // namespace qs
