/* ${COMMENT}
 * Every weight and bias is zero: the output is the constant ${VALUE}. */
static void ${FUNCTION}(int8_t *output)
{
    memset(output, ${VALUE}, ${SIZE});
}
