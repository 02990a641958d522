"""The errors of tether.sap (loaded when one is raised or named, not with the client).

`SAPError` is the base; `code` is SAP's (an ack's) or MQTT's (a CONNACK's) number.
MeasureRefused and MeasureUnconfirmed come from Measure.result() (tether.sap.acks);
SAPConnectError (tether.sap.refusal) explains a refused connection.
"""


class SAPError(Exception):
    """Base of this package's errors; `code` is SAP's (ack) or MQTT's (CONNACK) number."""

    code = None


class MeasureRefused(SAPError):
    """The gateway acked the measure with an error code (`code`, `message`, `measure`)."""

    def __init__(self, measure):
        m = measure.message
        super().__init__(
            "measure %s/%s refused: code %s%s"
            % (measure.capability, measure.sensor, measure.code, (": " + m) if m else ""),
        )
        self.code = measure.code
        self.message = m
        self.measure = measure


class MeasureUnconfirmed(SAPError):
    """No ack for the measure: `reason` says why (time out, connection lost, dropped). The
    gateway may or may not have it; it is not sent again (that could store it twice)."""

    def __init__(self, measure):
        super().__init__(
            "measure %s/%s %s: %s"
            % (measure.capability, measure.sensor, measure.state, measure.message),
        )
        self.reason = measure.message
        self.measure = measure
