"""Time passes: one scheduling-and-enactment pass (a tick), one at a time."""

from __future__ import annotations

from dataclasses import dataclass, field

from cloudctl.app.context import Room
from cloudctl.enact import Enactor, EnactReport
from cloudctl.store.records import LeaseRecord


@dataclass
class TickOutcome:
    ran: bool
    now: int
    holder: str = ""
    changed: list[LeaseRecord] = field(default_factory=list)
    report: EnactReport = field(default_factory=EnactReport)
    next_event: int | None = None


class Ticks(Room):
    def tick(self, blocking: bool = False, reap: bool = False) -> TickOutcome:
        """One scheduling-and-enactment pass at the current time (`reap`: terminate cloud
        instances tagged with this store that no lease owns)."""
        with self.store.lock.hold(blocking) as holder:
            if holder:
                return TickOutcome(False, self.clock(), holder=holder)
            self.app.vms.finish_interrupted_moves()
            with self.app.session() as s:
                s.settle()
                changed = s.save()
                records = [s.record(lease) for lease in changed]
                now = s.now
            enactor = Enactor(self.store, self.settings, self.app.pool, lambda: now)
            try:
                return self._enact(enactor, now, records, reap)
            finally:
                enactor.close()

    def _enact(self, enactor: Enactor, now: int, records: list[LeaseRecord],
               reap: bool) -> TickOutcome:
        report = EnactReport()
        enactor.reconcile(report)
        enactor.reconcile_clouds(report, reap)
        if report.lost_hosts or report.recovered_hosts:
            with self.app.session() as s:
                self.app.hosts.mark_status(s, report.lost_hosts, report.recovered_hosts)
                records += [s.record(lease) for lease in s.save()]
        enactor.enact(report)
        if report.exhausted or report.unburst:
            with self.app.session() as s:
                scheduler = s.need_scheduler()
                for lease_id, reason in report.exhausted.items():
                    scheduler.fail(lease_id, s.now, reason)
                for lease_id, reason in report.unburst.items():
                    scheduler.unburst(lease_id, s.now, reason)
                s.settle()
                records += [s.record(lease) for lease in s.save()]
            enactor.enact(report)
        with self.store.read():
            upcoming = self.store.state.next_event()
            retry = [vm.retry_at for vm in self.store.vms.all(live=True)
                     if vm.retry_at is not None and vm.state != vm.want]
        times = [upcoming] if upcoming is not None else []
        times += retry
        return TickOutcome(True, now, changed=records, report=report,
                           next_event=min(times) if times else None)
