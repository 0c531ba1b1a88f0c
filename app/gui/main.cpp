// The Quantscope workbench: everything but main() lives in quantscope_app so tests can link it.
#include "app/gui/application.h"

#include <QApplication>

int main(int argc, char* argv[])
{
    QApplication app(argc, argv);
    return qs::runApplication(app);
}
