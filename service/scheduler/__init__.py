"""APScheduler 3.x with one acting leader (see ``service.scheduler.runner``)."""
