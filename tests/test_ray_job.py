def test_an_actor_keeps_to_the_cpus_ray_gives_it(monkeypatch):
    """Ray hands an actor its CPUs as OMP_NUM_THREADS; the detector's threads must follow, not every core."""
    import cv2

    from lookalike.index.ray_job import EmbedWorker

    before = cv2.getNumThreads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        worker = EmbedWorker("sface", "yunet", None, 10**8, None, None)
        assert cv2.getNumThreads() == 1
        if worker.detector.engine == "onnxruntime":
            assert worker.detector._engine.session.get_session_options().intra_op_num_threads == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2,1")  # OpenMP's nested form: the outer count
        EmbedWorker("sface", "yunet", None, 10**8, None, None)
        assert cv2.getNumThreads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "many")  # not a number: left alone, no traceback
        EmbedWorker("sface", "yunet", None, 10**8, None, None)
    finally:
        cv2.setNumThreads(before)
