"""Which MongoDB answers are an outage (503 with Retry-After, a message waited out) and which are the request's."""

from pymongo.errors import DuplicateKeyError, OperationFailure, WriteConcernError

from shared.outages import unavailable_store


def test_a_write_answered_while_mongodb_shuts_down_is_an_outage_not_a_500():
    # What a DELETE met during a graceful MongoDB stop (the write had been applied; the client heard 500).
    shutting_down = WriteConcernError(
        "Replication is being shut down", 91, {"code": 91, "codeName": "ShutdownInProgress", "errorLabels": ["RetryableWriteError"]}
    )
    assert unavailable_store(shutting_down) == "MongoDB"
    stepped_down = OperationFailure("operation was interrupted because the primary stepped down", 11602, {"code": 11602})
    assert unavailable_store(stepped_down) == "MongoDB"


def test_what_mongodb_refuses_for_the_request_itself_is_not_an_outage():
    assert unavailable_store(DuplicateKeyError("E11000 duplicate key", 11000, {"code": 11000})) is None
    assert unavailable_store(OperationFailure("unknown operator: $nope", 2, {"code": 2})) is None
    timed_out = WriteConcernError("waiting for replication timed out", 64, {"code": 64})  # w:2 on one node
    assert unavailable_store(timed_out) is None
